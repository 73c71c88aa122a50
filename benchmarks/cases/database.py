"""Case ``database``: PostgreSQLClient against raw asyncpg on the same server, same run.

A database is created for the run and dropped after. Each figure is the median over small
alternating chunks (``benchmarks.cases.state.interleaved``), so ours and raw see the same load.

- ``fetch_one`` by primary key with a named parameter, on a held connection
  (``client.connection()``), against ``fetchrow`` with ``$1`` on that same connection; and the
  same through the pool (``client.fetch_one`` against ``pool.fetchrow``, each a pool round).
- ``fetch_all`` of 1,000 rows as dicts against ``fetch`` returning asyncpg Records; and
  ``fetch_records`` (Records too) against the same.
- ``insert`` (``RETURNING *``, first column) against ``INSERT ... RETURNING id``.
- ``execute_many`` of 10,000 rows: ours goes through COPY (``copy_records_to_table``);
  the baseline is asyncpg's ``executemany`` of the same INSERT.
"""

from __future__ import annotations

import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from app.database import PostgreSQLClient
from benchmarks.cases.state import interleaved
from benchmarks.core import BenchConfig, Measurement, case

ROWS = 1_000
BATCH = 10_000
SCHEMA = """
CREATE TABLE items (
    id serial PRIMARY KEY,
    name text NOT NULL,
    score double precision NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE batch (id bigint, name text, score double precision);
"""
BY_ID_NAMED = "SELECT id, name, score, created_at FROM items WHERE id = :id"
BY_ID_RAW = "SELECT id, name, score, created_at FROM items WHERE id = $1"
ALL_ROWS = "SELECT id, name, score, created_at FROM items ORDER BY id LIMIT 1000"
BATCH_NAMED = "INSERT INTO batch (id, name, score) VALUES (:id, :name, :score)"
BATCH_RAW = "INSERT INTO batch (id, name, score) VALUES ($1, $2, $3)"


def cycling_ids(make: Callable[[int], Awaitable[object]]) -> Callable[[], Awaitable[object]]:
    position = 0

    def next_call() -> Awaitable[object]:
        nonlocal position
        position = position % ROWS + 1
        return make(position)

    return next_call


async def bulk(client: PostgreSQLClient, raw: asyncpg.Pool, reps: int) -> tuple[float, float]:
    """Median rows/s of execute_many (COPY) and of raw executemany, alternating."""
    named = [{"id": i, "name": f"n{i}", "score": i / 3} for i in range(BATCH)]
    positional = [(i, f"n{i}", i / 3) for i in range(BATCH)]
    ours: list[float] = []
    base: list[float] = []
    for _ in range(reps):
        await client.execute("TRUNCATE batch")
        start = time.perf_counter()
        await client.execute_many(BATCH_NAMED, named)
        ours.append(BATCH / (time.perf_counter() - start))
        await client.execute("TRUNCATE batch")
        start = time.perf_counter()
        await raw.executemany(BATCH_RAW, positional)
        base.append(BATCH / (time.perf_counter() - start))
    assert await client.fetch_value("SELECT count(*) FROM batch") == BATCH
    return statistics.median(ours), statistics.median(base)


async def measure(dsn: str, config: BenchConfig) -> list[Measurement]:
    count = 3_000 if config.quick else 20_000
    client = PostgreSQLClient(dsn, pool_size=2, max_overflow=0)
    await client.connect()
    assert client.pool is not None
    raw_pool = client.pool  # the same pool: the difference is ours alone
    try:
        await client.execute(SCHEMA)
        await client.execute_many(
            "INSERT INTO items (name, score) VALUES (:name, :score)",
            [{"name": f"item{i}", "score": i * 0.5} for i in range(ROWS)],
        )
        await client.vacuum_analyze("items")
        # Ours and raw on one connection: two server backends can differ by more than ours costs.
        async with client.connection() as session:
            raw = session.connection
            one = await interleaved(
                {
                    "ours": cycling_ids(lambda i: session.fetch_one(BY_ID_NAMED, {"id": i})),
                    "raw": cycling_ids(lambda i: raw.fetchrow(BY_ID_RAW, i)),
                },
                count,
            )
            many = await interleaved(
                {
                    "ours": lambda: session.fetch_all(ALL_ROWS),
                    "records": lambda: session.fetch_records(ALL_ROWS),
                    "raw": lambda: raw.fetch(ALL_ROWS),
                },
                count // 40,
                chunk=10,
            )
            inserts = await interleaved(
                {
                    "ours": lambda: session.insert("items", {"name": "new", "score": 1.0}),
                    "raw": lambda: raw.fetchval(
                        "INSERT INTO items (name, score) VALUES ($1, $2) RETURNING id", "new", 1.0
                    ),
                },
                count // 2,
            )
        pooled = await interleaved(
            {
                "ours": cycling_ids(lambda i: client.fetch_one(BY_ID_NAMED, {"id": i})),
                "raw": cycling_ids(lambda i: raw_pool.fetchrow(BY_ID_RAW, i)),
            },
            count // 2,
        )
        copy_rate, executemany_rate = await bulk(client, raw_pool, 3 if config.quick else 7)
    finally:
        await client.close()
    return [
        Measurement(
            "database", "fetch_one by PK, named param, held connection", "rows/s",
            one["ours"], one["raw"], "asyncpg fetchrow $1, held connection", bar=0.95,
        ),
        Measurement(
            "database", "fetch_one by PK through the pool", "rows/s",
            pooled["ours"], pooled["raw"], "asyncpg pool.fetchrow $1", bar=0.95,
        ),
        Measurement(
            "database", "fetch_all 1,000 rows as dicts", "queries/s",
            many["ours"], many["raw"], "asyncpg fetch (Records)", bar=0.9,
        ),
        Measurement(
            "database", "fetch_records 1,000 rows (Records)", "queries/s",
            many["records"], many["raw"], "asyncpg fetch (Records)", bar=0.9,
        ),
        Measurement(
            "database", "insert, first column back", "rows/s",
            inserts["ours"], inserts["raw"], "asyncpg INSERT ... RETURNING id", bar=0.9,
        ),
        Measurement(
            "database", "execute_many 10,000 rows (COPY)", "rows/s",
            copy_rate, executemany_rate, "asyncpg executemany", bar=2.0,
            extra={"path": "copy_records_to_table", "batch": BATCH},
        ),
    ]  # fmt: skip


@case("database")
async def database_case(config: BenchConfig) -> list[Measurement]:
    name = f"bench_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(config.postgres_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        dsn = urlunsplit(urlsplit(config.postgres_dsn)._replace(path=f"/{name}"))
        return await measure(dsn, config)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
