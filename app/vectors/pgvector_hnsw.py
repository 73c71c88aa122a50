"""The HNSW indexes of ``PgVectorStore``'s namespaces: when to build one, building it, and
knowing whether a namespace has a usable one.

A namespace gets its index once it holds ``min_rows`` rows (V13: exact search below). The
build runs in the background after the write that crossed the threshold (or before
``bulk_load`` returns), as ``CREATE INDEX CONCURRENTLY`` so writes go on meanwhile, under
a session advisory lock so that one instance builds while the others carry on exactly.
Queries use an index once it is valid; that is read from ``pg_index`` at most every
``INDEX_STATE_TTL_S`` per namespace, so an index another instance built is picked up that
late at most (the exact path is correct meanwhile, only slower).
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Final

import asyncpg
import structlog

from app.vectors.pgvector_schema import Tables

if TYPE_CHECKING:
    from app.vectors.pgvector_schema import Connection

__all__ = ["INDEX_STATE_TTL_S", "HnswIndexes"]

log = structlog.get_logger(__name__)

INDEX_STATE_TTL_S: Final = 2.0
_VALID_INDEX: Final = (
    "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
    "WHERE c.relname = $1 AND c.relnamespace = $2::regnamespace"
)


class HnswIndexes:
    """Builds and tracks the HNSW index of each namespace table (tables by unqualified name)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        tables: Tables,
        *,
        min_rows: int,
        m: int,
        ef_construction: int,
        build_memory_mb: int,
    ) -> None:
        self._pool = pool
        self._tables = tables
        self.min_rows = min_rows
        self.m = m
        self.ef_construction = ef_construction
        self.build_memory_mb = build_memory_mb
        self._valid: dict[str, tuple[bool, float]] = {}  # table -> (valid index, read at)
        self._rows: dict[str, int] = {}  # table -> rows at the last count + rows written since
        self.builds: dict[str, asyncio.Task[None]] = {}  # background builds in flight

    async def ready(self, connection: Connection, table: str) -> bool:
        """Whether ``table`` has a valid HNSW index (read again after ``INDEX_STATE_TTL_S``)."""
        known = self._valid.get(table)
        now = time.monotonic()
        if known is not None and now - known[1] < INDEX_STATE_TTL_S:
            return known[0]
        index = self._tables.index_name(table)
        valid = bool(await connection.fetchval(_VALID_INDEX, index, self._tables.schema))
        self._valid[table] = (valid, now)
        return valid

    def forget(self) -> None:
        """Drop what is known about every table (read again on next use)."""
        self._valid.clear()
        self._rows.clear()

    async def after_write(self, table: str, rows: int) -> None:
        """Start a background build once the namespace may have reached ``min_rows``.

        ``_rows`` is what the table held at this instance's last count plus what it wrote
        since (deletes are not subtracted: it errs high, so the count comes early); the
        table is counted again only when that reaches ``min_rows``.
        """
        indexed, _ = self._valid.get(table, (False, 0.0))
        if indexed or table in self.builds:
            return
        estimate = self._rows.get(table)
        if estimate is not None and estimate + rows < self.min_rows:
            self._rows[table] = estimate + rows
            return
        self._rows[table] = count = await self.count(table)
        if count < self.min_rows:
            return
        task = asyncio.get_running_loop().create_task(self.build(table))
        self.builds[table] = task
        task.add_done_callback(lambda done: self._build_done(table, done))

    async def loaded(self, table: str, size: int | None, *, build: bool) -> None:
        """After a bulk load: ``size`` rows now (``None``: unknown, counted); with ``build``,
        the index is built before this returns when the table is large enough."""
        self._valid.pop(table, None)
        size = size if size is not None else await self.count(table)
        self._rows[table] = size
        if build and size >= self.min_rows:
            await self.build(table)
        elif not build:
            await self.after_write(table, 0)

    def _build_done(self, table: str, task: asyncio.Task[None]) -> None:
        self.builds.pop(table, None)
        if not task.cancelled() and task.exception() is not None:
            log.error("vectors.hnsw_build_failed", table=table, error=repr(task.exception()))

    async def count(self, table: str) -> int:
        async with self._pool.acquire() as connection:
            count: int = await connection.fetchval(
                f"SELECT count(*) FROM {self._tables.table(table)}"
            )
        return count

    async def build(self, table: str) -> None:
        """Build ``table``'s index unless a valid one exists or another session builds it."""
        qualified = self._tables.table(table)
        index = self._tables.index_name(table)
        started = time.perf_counter()
        async with self._pool.acquire() as connection:
            # One builder per table across instances; others see the index when it is done.
            locked = await connection.fetchval(
                "SELECT pg_try_advisory_lock(hashtext($1))", qualified
            )
            if not locked:
                return
            try:
                valid = await connection.fetchval(_VALID_INDEX, index, self._tables.schema)
                if valid:
                    return
                if valid is not None:  # an interrupted CONCURRENTLY build left it invalid
                    await connection.execute(f"DROP INDEX {self._tables.table(index)}")
                # A graph that does not fit is built on disk, many times slower (100k x 384
                # needs about 200 MB: 368 s with the default 64 MB, 70 s with 512 MB here);
                # the pool's reset on release undoes this SET.
                memory = int(self.build_memory_mb)
                await connection.execute(f"SET maintenance_work_mem = '{memory}MB'")
                await connection.execute(
                    f"CREATE INDEX CONCURRENTLY {index} ON {qualified} USING hnsw "
                    f"(embedding vector_ip_ops) WITH (m = {int(self.m)}, "
                    f"ef_construction = {int(self.ef_construction)})",
                    timeout=None,
                )
            finally:
                await connection.fetchval("SELECT pg_advisory_unlock(hashtext($1))", qualified)
        self._valid.pop(table, None)
        log.info(
            "vectors.hnsw_built",
            table=qualified,
            duration_ms=round((time.perf_counter() - started) * 1000, 1),
        )

    async def close(self) -> None:
        """Cancel the builds in flight (an interrupted build is dropped and redone later)."""
        builds = list(self.builds.values())
        for build in builds:
            build.cancel()
        await asyncio.gather(*builds, return_exceptions=True)
        self.builds.clear()
