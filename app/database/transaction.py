"""Connections held for a unit of work: ``DatabaseSession`` (each statement commits by itself)
and ``Transaction`` (commit at the end of the block, rollback on any exception).

A transaction is also the *current* one of the task that opened it (a context variable): the
client's own methods called in that task run inside it, ``client.transaction()`` there opens a
savepoint, and ``vacuum_analyze`` is refused. Another task may not use it: one connection
cannot run two statements at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Literal

import asyncpg
import structlog

from app.database.driver_errors import DRIVER_ERRORS, translate
from app.database.runner import Connection, QueryRunner
from app.errors import TransactionError

if TYPE_CHECKING:
    from app.database.client import PostgreSQLClient

__all__ = ["DatabaseSession", "Isolation", "Transaction", "current_transaction", "run_transaction"]

log = structlog.get_logger(__name__)

Isolation = Literal["read_committed", "repeatable_read", "serializable"]

_current: ContextVar[Transaction | None] = ContextVar("datalayer_transaction", default=None)


def current_transaction() -> Transaction | None:
    """The transaction the current task has open (innermost savepoint), if any."""
    transaction = _current.get()
    return transaction if transaction is not None and transaction.active else None


class DatabaseSession(QueryRunner):
    """The query methods on one connection held from the pool until the block ends."""

    def __init__(self, client: PostgreSQLClient, connection: Connection) -> None:
        self.client = client
        self.copy_min_rows = client.copy_min_rows
        self.active = True
        self._connection = connection

    @property
    def connection(self) -> Connection:
        """The asyncpg connection itself, for what the helpers do not cover."""
        self._check_active()
        return self._connection

    def _check_active(self) -> None:
        if not self.active:
            raise TransactionError(
                f"this {type(self).__name__.lower()} has ended (its block exited); "
                "open a new one with client.connection() or client.transaction()"
            )

    def _held_connection(self) -> Connection:
        if not self.active:
            self._check_active()
        return self._connection

    def _call_pool(self) -> asyncpg.Pool:
        return self.client._require_pool()  # never reached: a session always holds one

    def transaction(
        self, *, isolation: Isolation | None = None
    ) -> AbstractAsyncContextManager[Transaction]:
        """A transaction on this connection (a savepoint if one is already open on it)."""
        self._check_active()
        return run_transaction(self.client, self._connection, isolation=isolation)


class Transaction(DatabaseSession):
    """A ``DatabaseSession`` inside a transaction (or savepoint); ``depth`` 0 is the outermost."""

    def __init__(self, client: PostgreSQLClient, connection: Connection, depth: int) -> None:
        super().__init__(client, connection)
        self.depth = depth
        self.task = asyncio.current_task()

    async def vacuum_analyze(self, table_name: str | None = None) -> None:
        """Refused: VACUUM cannot run inside a transaction block."""
        raise TransactionError(
            "vacuum_analyze cannot run inside a transaction (Postgres refuses VACUUM in a "
            "transaction block); call client.vacuum_analyze() after the block"
        )


@asynccontextmanager
async def run_transaction(
    client: PostgreSQLClient,
    connection: Connection,
    *,
    isolation: Isolation | None = None,
    readonly: bool = False,
) -> AsyncIterator[Transaction]:
    """Begin on ``connection`` (a savepoint when it is in a transaction), yield, then commit;
    roll back if the block raises anything, and re-raise."""
    outer = _current.get()
    nested = outer is not None and outer.active and outer._connection is connection
    depth = outer.depth + 1 if nested and outer is not None else 0
    driver = connection.transaction(isolation=isolation, readonly=readonly)
    try:
        await driver.start()
    except DRIVER_ERRORS as exc:
        raise translate(exc, "begin" if depth == 0 else "savepoint") from exc
    transaction = Transaction(client, connection, depth)
    token = _current.set(transaction)
    try:
        yield transaction
    except BaseException as exc:
        transaction.active = False
        _current.reset(token)
        try:
            await driver.rollback()
        except DRIVER_ERRORS as rollback_error:
            # The block's own error is the one to see; the pool resets or drops the connection.
            log.error("database.rollback_failed", error=repr(rollback_error))  # noqa: TRY400
            exc.add_note(f"the rollback failed too: {rollback_error!r}")
        raise
    transaction.active = False
    _current.reset(token)
    try:
        await driver.commit()
    except DRIVER_ERRORS as exc:
        raise translate(exc, "commit" if depth == 0 else "release savepoint") from exc
