"""Health, table statistics and VACUUM on a real Postgres (loopback server and embedded)."""

from __future__ import annotations

import pytest

from app.database import PostgreSQLClient
from app.errors import SqlIdentifierError, TransactionError, UndefinedTableError

pytestmark = pytest.mark.integration


async def test_health_check_reports_server_and_pool(db: PostgreSQLClient) -> None:
    """health_check gives the server version, pool size and free count, and the latency."""
    health = await db.health_check()
    assert health["status"] == "healthy"
    expected_version = await db.fetch_value("SHOW server_version")
    assert health["server_version"] == expected_version
    assert health["pool"]["max_size"] == 2
    assert 0 <= health["pool"]["free"] <= health["pool"]["size"] <= 2
    assert health["latency_ms"] > 0


async def test_table_stats_after_vacuum_analyze(db: PostgreSQLClient, table: str) -> None:
    """After vacuum_analyze, the table's stats count its rows and its sizes are positive."""
    await db.execute_many(
        f"INSERT INTO {table} (name) VALUES (:name)", [{"name": str(i)} for i in range(25)]
    )
    await db.vacuum_analyze(table)
    stats = await db.get_table_stats(table)
    assert (stats["schemaname"], stats["tablename"]) == ("public", table)
    assert stats["row_count"] == 25
    assert stats["total_bytes"] >= stats["table_bytes"] > 0
    assert stats["last_vacuum"] is not None
    everything = await db.get_all_tables_stats()
    assert table in {row["tablename"] for row in everything}
    totals = [row["total_bytes"] for row in everything]
    assert totals == sorted(totals, reverse=True)


async def test_stats_of_a_missing_or_unsafe_table_are_refused(db: PostgreSQLClient) -> None:
    """A table that does not exist is an UndefinedTableError; a name that is not plain, refused."""
    with pytest.raises(UndefinedTableError, match="get_table_stats on no_such_table"):
        await db.get_table_stats("no_such_table")
    with pytest.raises(SqlIdentifierError):
        await db.get_table_stats("pg_class'); SELECT ('")
    with pytest.raises(SqlIdentifierError):
        await db.vacuum_analyze("x y")


async def test_vacuum_analyze_is_refused_inside_a_transaction(
    db: PostgreSQLClient, table: str
) -> None:
    """vacuum_analyze in a transaction block (client or transaction object) is refused."""
    async with db.transaction() as transaction:
        with pytest.raises(TransactionError, match="inside a transaction"):
            await db.vacuum_analyze(table)
        with pytest.raises(TransactionError, match="inside a transaction"):
            await transaction.vacuum_analyze(table)
    await db.vacuum_analyze()  # the whole database, outside the block
