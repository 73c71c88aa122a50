"""Apply migrations once per database, whatever the number of processes starting together.

The runner holds one pool connection for its whole run and takes a session advisory lock on it
(``pg_advisory_lock``); only then does it create the ledger if missing and read which versions
are applied, so a process that waited for the lock sees what the previous holder applied. Each
transactional file runs in one transaction with its ledger row: both land, or neither. Applied
files are verified against their ledger checksum first: a changed file fails the start.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Final, Literal

import asyncpg
import structlog

from app.database.driver_errors import DRIVER_ERRORS, translate
from app.database.migration_files import Migration, discover, migration_sources
from app.database.runner import Connection
from app.database.sql_text import split_statements
from app.errors import DatabaseError, MigrationChecksumError, MigrationFailedError

__all__ = [
    "LEDGER_TABLE",
    "AppliedMigration",
    "MigrationRunner",
    "MigrationState",
    "load_migration_runner",
]

log = structlog.get_logger(__name__)

LEDGER_TABLE: Final = "datalayer_schema_migrations"
# One advisory lock key for "migrating this database" (any bigint; derived so it reads as ours).
LOCK_KEY: Final = int.from_bytes(
    hashlib.sha256(b"datalayer:migrations").digest()[:8], "big", signed=True
)
LOCK_TIMEOUT_S: Final = 600.0
STATEMENT_TIMEOUT_S: Final = 3600.0

_CREATE_LEDGER: Final = f"""
CREATE TABLE IF NOT EXISTS {LEDGER_TABLE} (
    version bigint PRIMARY KEY,
    name text NOT NULL,
    checksum text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    duration_ms double precision NOT NULL DEFAULT 0
)"""
_READ_LEDGER: Final = f"SELECT version, name, checksum, applied_at FROM {LEDGER_TABLE}"  # noqa: S608
_RECORD: Final = (
    f"INSERT INTO {LEDGER_TABLE} (version, name, checksum, duration_ms) VALUES ($1, $2, $3, $4)"  # noqa: S608
)
_REPAIR: Final = f"UPDATE {LEDGER_TABLE} SET checksum = $2, name = $3 WHERE version = $1"  # noqa: S608

State = Literal["applied", "pending", "changed", "file missing"]


@dataclass(frozen=True)
class AppliedMigration:
    """A ledger row."""

    version: int
    name: str
    checksum: str
    applied_at: datetime


@dataclass(frozen=True)
class MigrationState:
    """One line of ``migrate status``."""

    version: int
    name: str
    source: str
    state: State
    applied_at: datetime | None
    checksum: str


class MigrationRunner:
    """Apply, inspect and repair ``migrations`` on the database behind ``pool``."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        migrations: Sequence[Migration],
        *,
        lock_timeout_s: float = LOCK_TIMEOUT_S,
        statement_timeout_s: float = STATEMENT_TIMEOUT_S,
    ) -> None:
        self._pool = pool
        self._migrations = list(migrations)
        self._lock_timeout_s = lock_timeout_s
        self._statement_timeout_s = statement_timeout_s

    @asynccontextmanager
    async def _locked(self) -> AsyncIterator[Connection]:
        """One connection, holding the migration lock, for the whole block."""
        try:
            async with self._pool.acquire() as connection:
                waited = time.perf_counter()
                await connection.execute(
                    "SELECT pg_advisory_lock($1)", LOCK_KEY, timeout=self._lock_timeout_s
                )
                log.debug("migrations.locked", wait_ms=round((time.perf_counter() - waited) * 1e3))
                try:
                    yield connection
                finally:
                    # Released explicitly: the pool's reset would too, but not if it is replaced.
                    await connection.execute("SELECT pg_advisory_unlock($1)", LOCK_KEY)
        except DatabaseError:
            raise
        except DRIVER_ERRORS as exc:
            raise translate(exc, "migrate", table=LEDGER_TABLE) from exc

    async def _ledger(self, connection: Connection, *, create: bool) -> dict[int, AppliedMigration]:
        if create:
            await connection.execute(_CREATE_LEDGER)
        elif await connection.fetchval("SELECT to_regclass($1)", LEDGER_TABLE) is None:
            return {}
        rows = await connection.fetch(_READ_LEDGER)
        return {row["version"]: AppliedMigration(**dict(row)) for row in rows}

    def _verify(self, applied: dict[int, AppliedMigration]) -> list[Migration]:
        """The pending migrations; a changed applied file raises ``MigrationChecksumError``."""
        pending = []
        for migration in self._migrations:
            row = applied.get(migration.version)
            if row is None:
                pending.append(migration)
            elif row.checksum != migration.checksum:
                raise MigrationChecksumError(migration.label, row.checksum, migration.checksum)
        return pending

    async def apply(self, *, dry_run: bool = False) -> list[Migration]:
        """Apply every pending migration (or, with ``dry_run``, only list them)."""
        async with self._locked() as connection:
            applied = await self._ledger(connection, create=not dry_run)
            pending = self._verify(applied)
            latest = max(applied, default=0)
            for migration in pending:
                if dry_run:
                    continue
                if migration.version < latest:
                    log.warning(
                        "migrations.out_of_order", file=migration.label, latest_applied=latest
                    )
                await self._apply_one(connection, migration)
        if pending and not dry_run:
            log.info("migrations.applied", count=len(pending), latest=pending[-1].label)
        return pending

    async def _apply_one(self, connection: Connection, migration: Migration) -> None:
        started = time.perf_counter()
        timeout = self._statement_timeout_s
        try:
            if migration.transactional:
                async with connection.transaction():
                    await connection.execute(migration.sql, timeout=timeout)
                    await self._record(connection, migration, started)
            else:
                for statement in split_statements(migration.sql):
                    await connection.execute(statement, timeout=timeout)
                await self._record(connection, migration, started)
        except DRIVER_ERRORS as exc:
            error = translate(exc, "migrate", query=migration.sql)
            raise MigrationFailedError(migration.label, error) from error
        log.info("migrations.file_applied", file=migration.label, duration_ms=_ms(started))

    async def _record(self, connection: Connection, migration: Migration, started: float) -> None:
        await connection.execute(
            _RECORD, migration.version, migration.name, migration.checksum, _ms(started)
        )

    async def status(self) -> list[MigrationState]:
        """Every known and applied version, in apply order, with its state."""
        try:
            async with self._pool.acquire() as connection:
                applied = await self._ledger(connection, create=False)
        except DRIVER_ERRORS as exc:
            raise translate(exc, "migrate status", table=LEDGER_TABLE) from exc
        states: list[MigrationState] = []
        for migration in self._migrations:
            row = applied.pop(migration.version, None)
            state: State = "pending"
            if row is not None:
                state = "applied" if row.checksum == migration.checksum else "changed"
            states.append(
                MigrationState(
                    migration.version,
                    migration.name,
                    migration.source,
                    state,
                    None if row is None else row.applied_at,
                    migration.checksum,
                )
            )
        for row in sorted(applied.values(), key=lambda r: r.version):
            states.append(
                MigrationState(
                    row.version, row.name, "-", "file missing", row.applied_at, row.checksum
                )
            )
        return states

    async def repair(self) -> list[Migration]:
        """Accept the current checksum of every changed applied file (after a review)."""
        repaired = []
        async with self._locked() as connection:
            applied = await self._ledger(connection, create=False)
            for migration in self._migrations:
                row = applied.get(migration.version)
                if row is not None and row.checksum != migration.checksum:
                    await connection.execute(
                        _REPAIR, migration.version, migration.checksum, migration.name
                    )
                    log.warning(
                        "migrations.repaired",
                        file=migration.label,
                        old_checksum=row.checksum,
                        new_checksum=migration.checksum,
                    )
                    repaired.append(migration)
        return repaired


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


async def load_migration_runner(
    pool: asyncpg.Pool, extra_dirs: Iterable[Path | str] = ()
) -> MigrationRunner:
    """A runner for the product's migrations and then ``extra_dirs``' (files read off-loop)."""
    sources = migration_sources(extra_dirs)
    return MigrationRunner(pool, await asyncio.to_thread(discover, sources))
