"""The entity tables: migrations (``app/database/migrations/01NN_*.sql``, applied by the
database module's runner) and a check of the declarations against the tables they describe.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import asyncpg
import structlog

from app.database.migrator import load_migration_runner
from app.entities.declaration import EntityType
from app.entities.registry import EntityRegistry
from app.entities.sql import Connection
from app.errors import ConfigurationError

__all__ = ["apply_migrations", "check_tables"]

log = structlog.get_logger(__name__)

# Postgres' names (format_type) of the types a declaration maps fields to.
_CATALOG_NAMES = {"timestamptz": "timestamp with time zone"}


async def apply_migrations(pool: asyncpg.Pool, extra_dirs: Sequence[Path] = ()) -> list[str]:
    """Apply the pending migrations (the product's, the entity tables among them, then
    ``extra_dirs``) with the database module's runner; the names of those applied."""
    runner = await load_migration_runner(pool, extra_dirs)
    applied = await runner.apply()
    return [migration.file_name for migration in applied]


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
