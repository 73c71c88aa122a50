"""The entity tables: applying this package's migrations, and checking the declarations
against the tables they describe.

``apply_migrations`` runs ``app/database/migrations/01NN_*.sql`` (written to be re-run) under a
session advisory lock, so two processes starting together do not race. It stands in until the
database module's migration runner (with its ledger) applies them with the others.
"""

from __future__ import annotations

from pathlib import Path

import structlog

from app.entities.declaration import EntityType
from app.entities.registry import EntityRegistry
from app.entities.sql import Connection
from app.errors import ConfigurationError

__all__ = ["MIGRATIONS", "apply_migrations", "check_tables"]

log = structlog.get_logger(__name__)

MIGRATIONS = Path(__file__).resolve().parent.parent / "database" / "migrations"
MIGRATION_LOCK_KEY = 0x656E7469746965  # b"entitie"
# Postgres' names (format_type) of the types a declaration maps fields to.
_CATALOG_NAMES = {"timestamptz": "timestamp with time zone"}


def _own_migrations() -> list[Path]:
    return sorted(path for path in MIGRATIONS.glob("01[0-9][0-9]_*.sql") if path.name[:4].isdigit())


async def apply_migrations(conn: Connection) -> list[str]:
    """Apply the entity migrations (idempotent statements), one at a time, under a lock."""
    applied: list[str] = []
    await conn.execute(f"SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})")
    try:
        for path in _own_migrations():
            await conn.execute(path.read_text(encoding="utf-8"))
            applied.append(path.name)
    finally:
        await conn.execute(f"SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})")
    log.info("entities.migrations_applied", migrations=applied)
    return applied


async def _table_columns(conn: Connection, table: str) -> dict[str, str]:
    rows = await conn.fetch(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod) AS type "
        "FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
        "WHERE c.relname = $1 AND c.relnamespace = to_regnamespace(current_schema()) "
        "AND a.attnum > 0 AND NOT a.attisdropped",
        table,
    )
    return {row["attname"]: row["type"] for row in rows}


def _mismatches(entity: EntityType, columns: dict[str, str]) -> list[str]:
    if not columns:
        return [f"table {entity.table} does not exist"]
    wanted = {
        "id": "uuid",
        "version": "integer",
        "created_at": "timestamptz",
        "updated_at": "timestamptz",
        "deleted_at": "timestamptz",
        **{c.name: c.sql_type for c in entity.columns},
    }
    problems = []
    for name, sql_type in wanted.items():
        expected = _CATALOG_NAMES.get(sql_type, sql_type)
        if name not in columns:
            problems.append(f"{entity.table}.{name} is missing (want {sql_type})")
        elif columns[name] != expected:
            problems.append(f"{entity.table}.{name} is {columns[name]}, want {expected}")
    return problems


async def check_tables(conn: Connection, registry: EntityRegistry) -> None:
    """Refuse to start when a declared entity does not match its table (a migration is
    missing or differs): one error naming every mismatch."""
    problems: list[str] = []
    for entity in registry:
        problems += _mismatches(entity, await _table_columns(conn, entity.table))
    if problems:
        raise ConfigurationError(
            "the entity tables do not match their declarations: "
            + "; ".join(problems)
            + " (add or fix the table in a migration under app/database/migrations)"
        )
