"""Table statistics and ``VACUUM (ANALYZE)``, on any ``QueryRunner``."""

from __future__ import annotations

from typing import Any, Final

from app.database.identifiers import quote_table
from app.database.runner import QueryRunner
from app.errors import UndefinedTableError

__all__ = ["all_tables_stats", "table_stats", "vacuum_analyze"]

# The original design's keys (schemaname, tablename, *_size, row_count) and exact byte counts.
_STATS_COLUMNS: Final = """
    n.nspname AS schemaname,
    c.relname AS tablename,
    pg_size_pretty(pg_total_relation_size(c.oid)) AS total_size,
    pg_size_pretty(pg_relation_size(c.oid)) AS table_size,
    pg_size_pretty(pg_indexes_size(c.oid)) AS indexes_size,
    pg_total_relation_size(c.oid) AS total_bytes,
    pg_relation_size(c.oid) AS table_bytes,
    pg_indexes_size(c.oid) AS indexes_bytes,
    coalesce(s.n_live_tup, 0) AS row_count,
    coalesce(s.n_dead_tup, 0) AS dead_row_count,
    s.last_vacuum, s.last_autovacuum, s.last_analyze, s.last_autoanalyze
"""
_FROM: Final = """
    FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
"""
TABLE_STATS: Final = f"SELECT {_STATS_COLUMNS} {_FROM} WHERE c.oid = to_regclass(:name)"
ALL_TABLES_STATS: Final = f"""
    SELECT {_STATS_COLUMNS} {_FROM}
    WHERE c.relkind IN ('r', 'p')
      AND n.nspname NOT IN ('pg_catalog', 'information_schema')
      AND n.nspname NOT LIKE 'pg_toast%'
    ORDER BY pg_total_relation_size(c.oid) DESC, n.nspname, c.relname
"""


async def table_stats(runner: QueryRunner, table_name: str) -> dict[str, Any]:
    row = await runner.fetch_one(TABLE_STATS, {"name": quote_table(table_name)})
    if row is None:
        raise UndefinedTableError(
            f"get_table_stats on {table_name}: the table does not exist",
            operation="get_table_stats",
            table=table_name,
        )
    return row


async def all_tables_stats(runner: QueryRunner) -> list[dict[str, Any]]:
    return await runner.fetch_all(ALL_TABLES_STATS)


async def vacuum_analyze(runner: QueryRunner, table_name: str | None) -> None:
    target = "" if table_name is None else f" {quote_table(table_name)}"
    await runner.execute(f"VACUUM (ANALYZE){target}")
