"""transaction(): commit, rollback, savepoints, the current task's transaction."""

from __future__ import annotations

import asyncio

import pytest

from app.database import PostgreSQLClient, current_transaction
from app.errors import TransactionError, UniqueViolationError

pytestmark = pytest.mark.integration


class Boom(Exception):
    """Raised by a test to abort a block."""


async def count(db: PostgreSQLClient, table: str) -> int:
    value = await db.fetch_value(f"SELECT count(*) FROM {table}")
    assert isinstance(value, int)
    return value


async def test_a_transaction_commits_at_the_end(db: PostgreSQLClient, table: str) -> None:
    """Rows written in the block are invisible to other connections until the block ends."""
    async with db.transaction() as transaction:
        await transaction.insert(table, {"name": "a"})
        await transaction.execute(f"INSERT INTO {table} (name) VALUES (:n)", {"n": "b"})
        async with db.connection() as other:  # a second connection, outside the transaction
            assert await other.fetch_value(f"SELECT count(*) FROM {table}") == 0
    assert await count(db, table) == 2


async def insert_then_raise(db: PostgreSQLClient, table: str) -> None:
    async with db.transaction() as transaction:
        await transaction.insert(table, {"name": "a"})
        raise Boom


async def test_any_exception_rolls_back(db: PostgreSQLClient, table: str) -> None:
    """An exception in the block rolls everything back and propagates unchanged."""
    with pytest.raises(Boom):
        await insert_then_raise(db, table)
    assert await count(db, table) == 0


async def insert_twice(db: PostgreSQLClient, table: str, name: str, depth: int) -> None:
    """Insert a fresh row, then ``name`` twice (a unique violation), in a (nested) block."""
    async with db.transaction() as transaction:
        assert transaction.depth == depth
        await transaction.insert(table, {"name": f"{name}-fresh"})
        await transaction.insert(table, {"name": name})
        await transaction.insert(table, {"name": name})


async def test_a_failed_statement_rolls_back_the_block(db: PostgreSQLClient, table: str) -> None:
    """A unique violation inside the block rolls back the rows before it."""
    with pytest.raises(UniqueViolationError):
        await insert_twice(db, table, "a", depth=0)
    assert await count(db, table) == 0


async def test_nested_use_makes_a_savepoint(db: PostgreSQLClient, table: str) -> None:
    """An inner block that fails undoes only its own rows; the outer block still commits."""
    async with db.transaction() as outer:
        await outer.insert(table, {"name": "kept"})
        with pytest.raises(UniqueViolationError):
            await insert_twice(db, table, "dropped", depth=1)
        async with outer.transaction() as inner_ok:  # nesting through the object works alike
            await inner_ok.insert(table, {"name": "also kept"})
        await outer.insert(table, {"name": "after"})
    names = await db.fetch_all(f"SELECT name FROM {table} ORDER BY id")
    assert [row["name"] for row in names] == ["kept", "also kept", "after"]


async def test_client_calls_in_the_block_join_the_transaction(
    db: PostgreSQLClient, table: str
) -> None:
    """In the task that opened it, the client's own methods run in the transaction."""

    async def insert_through_the_client() -> None:
        async with db.transaction() as transaction:
            assert current_transaction() is transaction
            await db.insert(table, {"name": "a"})
            assert await db.fetch_value(f"SELECT count(*) FROM {table}") == 1
            raise Boom

    with pytest.raises(Boom):
        await insert_through_the_client()
    assert current_transaction() is None
    assert await count(db, table) == 0


async def test_another_task_cannot_use_the_open_transaction(
    db: PostgreSQLClient, table: str
) -> None:
    """A task started inside the block may not run statements on the block's connection."""
    async with db.transaction():
        task = asyncio.create_task(db.insert(table, {"name": "a"}))
        with pytest.raises(TransactionError, match="inherited an open transaction"):
            await task


async def test_a_finished_transaction_refuses_statements(db: PostgreSQLClient) -> None:
    """The transaction object cannot be used after its block."""
    async with db.transaction() as transaction:
        pass
    with pytest.raises(TransactionError, match="has ended"):
        await transaction.fetch_one("SELECT 1")


async def test_the_connection_is_healthy_after_a_rollback(database_dsn: str, table: str) -> None:
    """After a failed transaction, the pool's only connection is idle and answers."""
    client = PostgreSQLClient(database_dsn, pool_size=1, max_overflow=0)
    await client.connect()
    try:

        async def set_then_raise() -> None:
            async with client.transaction() as transaction:
                await transaction.execute("SET LOCAL statement_timeout = '1s'")
                raise Boom

        with pytest.raises(Boom):
            await set_then_raise()
        async with client.connection() as session:
            assert not session.connection.is_in_transaction()
            assert await session.fetch_value("SHOW statement_timeout") == "0"
    finally:
        await client.close()
