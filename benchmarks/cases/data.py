"""Case ``data``: conversations at 1M messages, export/import, and the Redis session touch.

A database of its own is created, filled deterministically by COPY (indexes built after the
load, as a bulk load should) and dropped at the end. Rows:

- history: ``get_conversation_history(conv, 50)`` p95 in ms (bar <= 2 ms), pages cached
  first; the raw asyncpg fetch of the same SQL on a held connection, measured in alternating
  chunks of 100, is shown in ``extra`` (ours also acquires from the pool, whose release runs
  a reset query, and builds the messages);
- search: ``search_conversations`` p95 in ms for a rare word, a common word, two words, a
  phrase (newest first) and a common word by relevance (bar <= 50 ms each);
- save: ``save_messages_batch`` of 10k messages into the indexed table, msgs/s (bar >= 5k);
- CSV export of every row, rows/s, against a raw ``copy_from_query`` of the same SELECT to a
  file (bar >= 0.7x);
- import of 50k rows with ``skip_duplicates`` (half already stored) against an executemany
  path (csv module, type conversion, ``INSERT ... ON CONFLICT DO NOTHING``) (bar >= 2x);
  beside it, the floor: a COPY of only the new rows into the indexed table, which any import
  has to do (their tsvector and index entries), so executemany / floor is the most any import
  can reach (``extra``); the best of five rounds, the paths taking turns going first;
- Redis ``get_session`` (one script: sliding touch) against a raw ``EVALSHA`` of the same
  script with the same keys and arguments (bar >= 0.9x), the two interleaved call by call.
"""

from __future__ import annotations

import csv
import random
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import asyncpg
from redis.asyncio import Redis

from app.data import (
    ConversationHistoryUnit,
    ConversationMessage,
    ExportManager,
    ImportManager,
    SessionConfig,
    SessionManager,
)
from app.data.conversations.models import SearchOrder
from app.data.sessions import RedisSessionStore
from app.data.sessions.redis_store import session_script
from app.data.transfer.formats import MESSAGE_FIELDS
from benchmarks.core import BenchConfig, Measurement, case, percentile

SEED = 19
CONVERSATIONS_PER_MILLION = 20_000
T0 = datetime(2025, 1, 1, tzinfo=UTC)
COMMON = ["order", "refund", "account", "password", "shipping"]
RARE = ["zephyrine", "quillbrook", "marzipanic"]
IMPORT_ROUNDS = 5
# The order of ``generate``'s values, as columns of the conversations table.
COLUMNS = ["id", *MESSAGE_FIELDS[1:]]


def vocabulary(rng: random.Random, size: int = 5000) -> list[str]:
    """Pronounceable made-up words, the same for a seed."""
    syllables = ["ka", "lo", "mi", "ner", "tu", "vas", "rin", "po", "shel", "dra", "qui", "zen"]
    return ["".join(rng.choice(syllables) for _ in range(rng.randint(2, 4))) for _ in range(size)]


def generate(total: int) -> Any:
    """``total`` message rows (id, conversation, time, texts, ms, metadata), deterministic."""
    rng = random.Random(SEED)
    words = vocabulary(rng)
    conversations = max(1, total * CONVERSATIONS_PER_MILLION // 1_000_000)
    for index in range(1, total + 1):
        user = rng.choices(words, k=rng.randint(6, 14))
        agent = rng.choices(words, k=rng.randint(8, 20))
        if rng.random() < 0.3:
            user.insert(rng.randrange(len(user) + 1), rng.choice(COMMON))
        if rng.random() < 0.1:
            agent[0:0] = ["tracking", "number"]
        if rng.random() < 0.0002:
            user.append(rng.choice(RARE))
        yield (
            index,
            f"conv-{rng.randrange(conversations)}",
            T0 + timedelta(seconds=index * 3),
            " ".join(user),
            " ".join(agent),
            round(rng.uniform(20, 2000), 3),
            '{"channel": "web"}',
        )


async def latencies(calls: list[Callable[[], Awaitable[object]]]) -> list[float]:
    """The latency in ms of each of ``calls``, run one after another."""
    samples = []
    for call in calls:
        started = time.perf_counter()
        await call()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


async def timed_p95(calls: list[Callable[[], Awaitable[object]]]) -> float:
    """p95 latency in ms of running ``calls`` one after another (after 20 warm-up calls)."""
    for call in calls[:20]:
        await call()
    return percentile(await latencies(calls), 0.95)


async def load(pool: asyncpg.Pool, history: ConversationHistoryUnit, total: int) -> None:
    """COPY ``total`` rows in batches, without indexes, then build them and analyze."""
    async with pool.acquire() as conn:
        for name in ("history", "recent", "search"):
            await conn.execute(f"DROP INDEX IF EXISTS conversations_{name}_idx")
        batch: list[tuple[Any, ...]] = []
        for row in generate(total):
            batch.append(row)
            if len(batch) == 50_000:
                await conn.copy_records_to_table("conversations", records=batch, columns=COLUMNS)
                batch = []
        if batch:
            await conn.copy_records_to_table("conversations", records=batch, columns=COLUMNS)
        await conn.execute("SET maintenance_work_mem = '256MB'")
    await history.initialize()  # builds the indexes dropped above
    async with pool.acquire() as conn:
        await conn.execute(
            "SELECT setval(pg_get_serial_sequence('conversations', 'id'), $1)", total
        )
        await conn.execute("VACUUM ANALYZE conversations")


async def history_and_search(
    pool: asyncpg.Pool, history: ConversationHistoryUnit, queries: int
) -> list[Measurement]:
    rng = random.Random(SEED + 1)
    conversations = [f"conv-{rng.randrange(CONVERSATIONS_PER_MILLION)}" for _ in range(queries)]
    async with pool.acquire() as conn:
        for conversation in conversations:  # the same pages are cached for both
            await conn.fetch(history._history_sql, conversation, 50)
        ours_ms: list[float] = []
        raw_ms: list[float] = []
        for start in range(0, len(conversations), 100):
            chunk = conversations[start : start + 100]
            ours_ms += await latencies(
                [partial(history.get_conversation_history, c, 50) for c in chunk]
            )
            raw_ms += await latencies(
                [partial(conn.fetch, history._history_sql, c, 50) for c in chunk]
            )
    ours, raw = percentile(ours_ms, 0.95), percentile(raw_ms, 0.95)
    rows = [
        Measurement(
            "data",
            "history(conv, 50) p95",
            "ms",
            ours,
            check="<=",
            bar=2.0,
            extra={"raw_fetch_p95_ms": raw},
        )
    ]
    searches: dict[str, tuple[str, SearchOrder]] = {
        "rare word": ("zephyrine", "recency"),
        "common word": ("refund", "recency"),
        "two words": ("tracking refund", "recency"),
        "phrase": ('"tracking number"', "recency"),
        "common word, relevance": ("refund", "relevance"),
    }
    for label, (text, order) in searches.items():
        call = partial(history.search_conversations, text, 20, order=order)
        p95 = await timed_p95([call] * max(40, queries // 5))
        rows.append(Measurement("data", f"search {label} p95", "ms", p95, check="<=", bar=50.0))
    return rows


async def save_batch(history: ConversationHistoryUnit) -> Measurement:
    messages = [
        ConversationMessage("bench-save", f"question {i} refund", f"answer {i}", T0, 10.0)
        for i in range(10_000)
    ]
    started = time.perf_counter()
    await history.save_messages_batch(messages)
    elapsed = time.perf_counter() - started
    return Measurement(
        "data", "save_messages_batch 10k", "msgs/s", 10_000 / elapsed, check=">=", bar=5000.0
    )


async def export_csv(
    pool: asyncpg.Pool, history: ConversationHistoryUnit, folder: Path
) -> Measurement:
    exporter = ExportManager(history)
    sql, _ = exporter.message_query(None, MESSAGE_FIELDS)  # the same columns and order
    ours_rates: list[float] = []
    raw_rates: list[float] = []
    async with pool.acquire() as conn:
        # A first raw pass reads the table into the caches, so neither side pays for it.
        await conn.copy_from_query(sql, output=folder / "raw.csv", format="csv", header=True)
        for _ in range(2):
            started = time.perf_counter()
            count = await exporter.export_conversations(None, "csv", folder / "ours.csv")
            ours_rates.append(count / (time.perf_counter() - started))
            started = time.perf_counter()
            await conn.copy_from_query(sql, output=folder / "raw.csv", format="csv", header=True)
            raw_rates.append(count / (time.perf_counter() - started))
    ours, raw = max(ours_rates), max(raw_rates)
    for name in ("ours.csv", "raw.csv"):
        (folder / name).unlink()
    return Measurement(
        "data",
        f"CSV export of {count:,} rows",
        "rows/s",
        ours,
        raw,
        "raw copy_from_query",
        ">=",
        0.7,
    )


async def import_skip_duplicates(pool: asyncpg.Pool, folder: Path) -> list[Measurement]:
    """Ours vs executemany: 50k rows, the first 25k already stored, into the indexed table."""
    await pool.execute("CREATE SCHEMA imp")
    target = ConversationHistoryUnit(pool, "imp.conversations")
    await target.initialize()
    path = folder / "import.csv"
    messages = list(generate(50_000))
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(MESSAGE_FIELDS)
        for row in messages:
            writer.writerow([row[0], row[1], row[2].isoformat(), *row[3:]])
    seed, fresh = messages[:25_000], messages[25_000:]  # stored before each import; new to it

    async def reset() -> None:
        await pool.execute("TRUNCATE imp.conversations")
        async with pool.acquire() as conn:
            await conn.copy_records_to_table(
                "conversations",
                schema_name="imp",
                records=seed,
                columns=COLUMNS,
            )
        await pool.execute("VACUUM ANALYZE imp.conversations")

    async def executemany_path() -> None:
        with path.open(newline="") as handle:
            reader = csv.reader(handle)
            next(reader)
            rows = [
                (int(r[0]), r[1], datetime.fromisoformat(r[2]), r[3], r[4], float(r[5]), r[6])
                for r in reader
            ]
        async with pool.acquire() as conn, conn.transaction():
            await conn.executemany(
                "INSERT INTO imp.conversations (id, conversation_id, timestamp, user_input, "
                "agent_response, response_time_ms, metadata) VALUES ($1, $2, $3, $4, $5, $6, $7) "
                "ON CONFLICT (id) DO NOTHING",
                rows,
            )

    async def floor_path() -> None:
        # Only what must be written: the 25k new rows, by COPY, straight into the indexed
        # table (their tsvector, heap and index entries), with none of an import's work.
        async with pool.acquire() as conn, conn.transaction():
            await conn.copy_records_to_table(
                "conversations", schema_name="imp", records=fresh, columns=COLUMNS
            )

    importer = ImportManager(target)

    async def ours_path() -> None:
        counts = await importer.import_conversations(path, "csv", "skip_duplicates")
        assert counts.skipped == 25_000, counts

    paths = [ours_path, executemany_path, floor_path]
    seconds: dict[Callable[[], Awaitable[None]], list[float]] = {path: [] for path in paths}
    for round_ in range(IMPORT_ROUNDS):  # the paths take turns going first
        start = round_ % len(paths)
        for timed in paths[start:] + paths[:start]:
            await reset()
            started = time.perf_counter()
            await timed()
            seconds[timed].append(time.perf_counter() - started)
    ours_s, raw_s, floor_s = (seconds[path] for path in paths)
    return [
        Measurement(
            "data",
            "import 50k CSV, skip_duplicates",
            "rows/s",
            50_000 / min(ours_s),
            50_000 / min(raw_s),
            "csv + executemany ON CONFLICT",
            ">=",
            2.0,
            extra={"most_any_import_can_reach_x": round(min(raw_s) / min(floor_s), 2)},
        ),
        Measurement(
            "data",
            "import 50k CSV, skip_duplicates (reference: the floor)",
            "rows/s",
            50_000 / min(ours_s),
            50_000 / min(floor_s),
            "COPY of only the 25k new rows into the indexed table",
        ),
    ]


async def session_touch(config: BenchConfig) -> Measurement:
    """get_session (one touch script) vs a raw EVALSHA of that script, call by call."""
    namespace = f"bench-{uuid.uuid4().hex[:8]}"
    redis = Redis.from_url(config.redis_url)
    store = RedisSessionStore(redis, namespace=namespace)
    manager = SessionManager(SessionConfig(session_timeout=600), store=store)
    try:
        session = await manager.create_session("bench", {"k": "v"})
        sid = session.session_id
        script = session_script("touch")
        keys = [f"{namespace}:sm:s:{sid}", f"{namespace}:sm:all", f"{namespace}:sm:clock"]
        args: list[str | int] = [600_000, f"{namespace}:sm:u:", sid]
        await script.run(redis, 3, *keys, *args)
        calls = 2000 if config.quick else 10_000

        async def ours() -> None:
            await manager.get_session(sid)

        async def raw() -> None:
            await redis.evalsha(script.sha, 3, *keys, *args)

        # Interleaved call by call, in a random order per pair, so both meet the same drift
        # and bursts of the machine.
        totals = {ours: 0, raw: 0}
        pair = [ours, raw]
        rng = random.Random(SEED)
        for _ in range(calls):
            rng.shuffle(pair)
            for call in pair:
                started = time.perf_counter_ns()
                await call()
                totals[call] += time.perf_counter_ns() - started
        return Measurement(
            "data",
            "redis get_session (sliding touch)",
            "ops/s",
            calls * 1e9 / totals[ours],
            calls * 1e9 / totals[raw],
            "raw EVALSHA, same script",
            ">=",
            0.9,
        )
    finally:
        keys = [key async for key in redis.scan_iter(match=f"{namespace}:*")]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()


@case("data")
async def data_case(config: BenchConfig) -> list[Measurement]:
    total = 100_000 if config.quick else 1_000_000
    database = f"bench_data_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(config.postgres_dsn)
    await admin.execute(f'CREATE DATABASE "{database}"')
    dsn = config.postgres_dsn.rsplit("/", 1)[0] + f"/{database}"
    rows: list[Measurement] = []
    try:
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=4)
        try:
            history = ConversationHistoryUnit(pool)
            await history.initialize()
            started = time.perf_counter()
            await load(pool, history, total)
            load_s = time.perf_counter() - started
            rows += await history_and_search(pool, history, 200 if config.quick else 1000)
            rows[0].extra["load_s"] = round(load_s, 1)
            rows[0].extra["messages"] = total
            with tempfile.TemporaryDirectory() as scratch:
                folder = Path(scratch)
                rows.append(await export_csv(pool, history, folder))
                rows.append(await save_batch(history))
                rows += await import_skip_duplicates(pool, folder)
        finally:
            await pool.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.close()
    rows.append(await session_touch(config))
    return rows
