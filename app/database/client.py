"""``PostgreSQLClient``: the original design's helper client, over an asyncpg pool.

In the container it runs on the container's pool (``PostgreSQLClient(pool=...)``) and never
opens one of its own; a script outside the container gives it a URL or the settings and calls
``connect()`` / ``close()``, and then it owns its pool (and the embedded server, if any).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import asyncpg
import structlog

from app.database import maintenance
from app.database.driver_errors import DRIVER_ERRORS, translate
from app.database.migration_files import Migration
from app.database.migrator import load_migration_runner
from app.database.runner import COPY_MIN_ROWS, Connection, QueryRunner
from app.database.transaction import (
    DatabaseSession,
    Isolation,
    Transaction,
    current_transaction,
    run_transaction,
)
from app.errors import (
    ConfigurationError,
    DatabaseConnectionError,
    DatabaseNotConnectedError,
    TransactionError,
)
from settings.secrets import mask_url

if TYPE_CHECKING:
    from settings import Settings

__all__ = ["PostgreSQLClient"]

log = structlog.get_logger(__name__)

POOL_CLOSE_TIMEOUT_S: Final = 10.0


def _asyncpg_dsn(url: str) -> str:
    """SQLAlchemy-style URLs (``postgresql+asyncpg://``) as asyncpg reads them."""
    scheme, sep, rest = url.partition("://")
    return f"{scheme.split('+', 1)[0]}{sep}{rest}" if sep else url


class PostgreSQLClient(QueryRunner):
    """The helper client: query methods, transactions, health, stats and maintenance.

    Give exactly one of ``database_url`` (a pool of ``pool_size + max_overflow`` connections
    is opened by ``connect()``), ``pool`` (the container's; never closed here) or ``settings``
    (the pool the container would open: embedded Postgres or the configured server).
    """

    backend: Final = "postgres"

    def __init__(  # noqa: PLR0917 - the original design's positional signature
        self,
        database_url: str | None = None,
        pool_size: int = 20,
        max_overflow: int = 10,
        pool_timeout: float = 30.0,
        pool_recycle: float = 3600.0,
        echo: bool = False,
        logger: Any = None,
        *,
        pool: asyncpg.Pool | None = None,
        settings: Settings | None = None,
        copy_min_rows: int = COPY_MIN_ROWS,
    ) -> None:
        given = [
            name
            for name, value in (
                ("database_url", database_url),
                ("pool", pool),
                ("settings", settings),
            )
            if value is not None
        ]
        if len(given) != 1:
            raise ConfigurationError(
                "PostgreSQLClient needs exactly one of database_url, pool or settings; "
                f"got {given or 'none'}"
            )
        if pool_size < 1 or max_overflow < 0 or pool_timeout <= 0 or pool_recycle <= 0:
            raise ConfigurationError(
                "pool_size must be >= 1, max_overflow >= 0, pool_timeout and pool_recycle > 0; "
                f"got {pool_size}, {max_overflow}, {pool_timeout}, {pool_recycle}"
            )
        if copy_min_rows < 1:
            raise ConfigurationError(f"copy_min_rows must be >= 1, got {copy_min_rows}")
        self.database_url = database_url
        self.pool_size = pool_size
        self.max_overflow = max_overflow
        self.pool_timeout = pool_timeout
        self.pool_recycle = pool_recycle
        self.echo = echo
        self.copy_min_rows = copy_min_rows
        self._log = logger if logger is not None else log
        self._settings = settings
        self._borrowed = pool
        self._pool: asyncpg.Pool | None = pool
        self._owned: AsyncExitStack | None = None

    @classmethod
    def from_pool(cls, pool: asyncpg.Pool, **options: Any) -> PostgreSQLClient:
        """A client on an existing pool (the container's); ``close()`` leaves the pool open."""
        return cls(pool=pool, **options)

    @classmethod
    def from_settings(cls, settings: Settings, **options: Any) -> PostgreSQLClient:
        """A client that opens the pool ``settings`` describe at ``connect()``."""
        return cls(settings=settings, **options)

    # --- connection --------------------------------------------------------------------------

    @property
    def pool(self) -> asyncpg.Pool | None:
        """The asyncpg pool the client runs on (None before ``connect()`` / after ``close()``)."""
        return self._pool

    @property
    def is_connected(self) -> bool:
        return self._pool is not None

    def address(self) -> str:
        """Where the client connects, password masked."""
        if self._settings is not None:
            if self._settings.embedded_postgres:
                return f"embedded:{self._settings.data_dir / 'postgres'}"
            return self._settings.postgres.address()
        if self.database_url is not None:
            return mask_url(self.database_url)
        return "pool"

    async def connect(self) -> None:
        """Open the pool (or take back the given one); a no-op when connected."""
        if self._pool is not None:
            return
        if self._borrowed is not None:
            self._pool = self._borrowed
            return
        stack = AsyncExitStack()
        try:
            if self._settings is not None:
                from app.backends.postgres import postgres_pool

                pool = await stack.enter_async_context(
                    asynccontextmanager(postgres_pool)(self._settings)
                )
            else:
                assert self.database_url is not None
                pool = await asyncpg.create_pool(
                    _asyncpg_dsn(self.database_url),
                    min_size=min(2, self.pool_size),
                    max_size=self.pool_size + self.max_overflow,
                    timeout=self.pool_timeout,
                    max_inactive_connection_lifetime=self.pool_recycle,
                )
                stack.push_async_callback(self._close_pool, pool)
        except DRIVER_ERRORS as exc:
            await stack.aclose()
            raise DatabaseConnectionError(
                f"could not connect to Postgres at {self.address()}: {type(exc).__name__}: {exc}"
            ) from exc
        except BaseException:
            await stack.aclose()
            raise
        self._owned, self._pool = stack, pool
        self._log.info("database.connected", address=self.address())

    @staticmethod
    async def _close_pool(pool: asyncpg.Pool) -> None:
        try:
            await asyncio.wait_for(pool.close(), POOL_CLOSE_TIMEOUT_S)
        except BaseException:
            pool.terminate()
            raise

    async def disconnect(self) -> None:
        """Close the pool the client opened; a given pool is only let go (it stays open)."""
        stack, self._owned, self._pool = self._owned, None, None
        if stack is not None:
            await stack.aclose()
            self._log.info("database.disconnected", address=self.address())

    async def close(self) -> None:
        """``disconnect()`` under the name the other clients use."""
        await self.disconnect()

    def _require_pool(self) -> asyncpg.Pool:
        pool = self._pool
        if pool is None:
            raise DatabaseNotConnectedError(
                "the database client is not connected: call `await client.connect()` first "
                "(or take the client from the container, which connects it)"
            )
        return pool

    def _held_connection(self) -> Connection | None:
        """The current task's transaction on this client, if any: calls run in it."""
        transaction = current_transaction()
        if transaction is None or transaction.client is not self:
            return None
        if transaction.task is not asyncio.current_task():
            raise TransactionError(
                "this task inherited an open transaction from the task that started it; "
                "one connection cannot serve both: use the transaction object in its own "
                "task, or start this task after the transaction block"
            )
        return transaction.connection

    def _call_pool(self) -> asyncpg.Pool:
        return self._require_pool()

    # --- held connections and transactions ----------------------------------------------------

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[DatabaseSession]:
        """Hold one pool connection for a block (each statement commits by itself)."""
        pool = self._require_pool()
        try:
            acquired = await pool.acquire()
        except DRIVER_ERRORS as exc:
            raise translate(exc, "acquire") from exc
        session = DatabaseSession(self, acquired)
        try:
            yield session
        finally:
            session.active = False
            await pool.release(acquired)

    @asynccontextmanager
    async def transaction(
        self, *, isolation: Isolation | None = None, readonly: bool = False
    ) -> AsyncIterator[Transaction]:
        """Commit at the end of the block, roll back on any exception.

        Inside a transaction of the same task this opens a savepoint on its connection; the
        client's methods called in the block run in the transaction.
        """
        outer = current_transaction()
        if outer is not None and outer.client is self:
            async with self._nested(outer, isolation) as transaction:
                yield transaction
            return
        pool = self._require_pool()
        try:
            acquired = await pool.acquire()
        except DRIVER_ERRORS as exc:
            raise translate(exc, "acquire") from exc
        try:
            async with run_transaction(
                self, acquired, isolation=isolation, readonly=readonly
            ) as transaction:
                yield transaction
        finally:
            await pool.release(acquired)

    def _nested(
        self, outer: Transaction, isolation: Isolation | None
    ) -> AbstractAsyncContextManager[Transaction]:
        if outer.task is not asyncio.current_task():
            raise TransactionError("a transaction cannot be shared with another task")
        if isolation is not None:
            raise TransactionError("a savepoint cannot change the isolation level")
        return run_transaction(self, outer.connection)

    # --- schema, health and maintenance -------------------------------------------------------

    async def initialize_schema(self, schema_path: str | Path) -> None:
        """Run the SQL file at ``schema_path`` as one script, in one transaction."""
        script = await asyncio.to_thread(Path(schema_path).read_text, encoding="utf-8")
        await self.execute_script(script)
        self._log.info("database.schema_initialized", path=str(schema_path))

    async def run_migrations(
        self, extra_dirs: Iterable[Path | str] = (), *, dry_run: bool = False
    ) -> list[Migration]:
        """Apply the product's pending migrations, then those in ``extra_dirs``; return them.

        Safe with several processes at once (an advisory lock); a file changed since it was
        applied raises ``MigrationChecksumError`` before anything runs.
        """
        runner = await load_migration_runner(self._require_pool(), extra_dirs)
        return await runner.apply(dry_run=dry_run)

    async def ping(self) -> None:
        """``SELECT 1``; raises a ``DatabaseError`` when Postgres does not answer."""
        await self.fetch_value("SELECT 1")

    async def health_check(self) -> dict[str, Any]:
        """Status, server version, pool size and free connections, and round-trip latency.

        Never raises for an unreachable server: ``status`` is ``"unhealthy"`` with the error.
        """
        pool = self._pool
        started = time.perf_counter()
        try:
            version = await self.fetch_value("SHOW server_version")
        except Exception as exc:  # a probe reports the failure instead of raising it
            self._log.warning("database.health_check_failed", error=str(exc))
            return {"status": "unhealthy", "backend": "postgresql", "error": str(exc)}
        latency_ms = round((time.perf_counter() - started) * 1000, 3)
        assert pool is not None  # the query above ran on it
        return {
            "status": "healthy",
            "backend": "postgresql",
            "server_version": version,
            "latency_ms": latency_ms,
            "pool": {
                "size": pool.get_size(),
                "free": pool.get_idle_size(),
                "min_size": pool.get_min_size(),
                "max_size": pool.get_max_size(),
            },
        }

    async def get_table_stats(self, table_name: str) -> dict[str, Any]:
        """Sizes and row counts of one table (``UndefinedTableError`` if it does not exist)."""
        return await maintenance.table_stats(self, table_name)

    async def get_all_tables_stats(self) -> list[dict[str, Any]]:
        """``get_table_stats`` for every user table, largest first."""
        return await maintenance.all_tables_stats(self)

    async def vacuum_analyze(self, table_name: str | None = None) -> None:
        """``VACUUM (ANALYZE)`` one table or the whole database; refused in a transaction."""
        if current_transaction() is not None:
            raise TransactionError(
                "vacuum_analyze cannot run inside a transaction (Postgres refuses VACUUM in a "
                "transaction block); call it after the block"
            )
        await maintenance.vacuum_analyze(self, table_name)
        self._log.info("database.vacuum_analyzed", table=table_name or "(all)")
