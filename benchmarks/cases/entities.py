"""Case ``entities``: the event-sourced write path against the ``eventsourcing`` library's
Postgres recorder, listing at 1M events, and relay latency.

Writes (a fresh database on the loopback server, both sides on it, alternating rounds):

- ours: ``EntityStore.create`` of a document (entity row + its event in one statement),
  16 concurrent asyncio writers on an asyncpg pool of 16; one writer; ``apply`` of 100
  creates in one transaction;
- baseline: ``eventsourcing`` 9.x ``PostgresApplicationRecorder.insert_events`` (psycopg 3,
  a pool of 16): one new aggregate's first event per call from 16 threads; one thread;
  100 events per call. Both record one event per change with a gap-free order (theirs by
  ``LOCK TABLE ... IN EXCLUSIVE MODE``, ours by the transaction-level advisory lock).

Listing: 1M events (``--quick``: 100k) made by SQL; the p95 of each listing shape (first
page, a deep keyset page, one filter each, newest first) through ``list_events`` on a held
connection (bar 5 ms) and through the app in-process with ``httpx`` (bar 15 ms).

Relay: commit (the create returned) -> the in-process bus handler ran, one at a time;
p50 bar 20 ms, p99 bar 100 ms.

Needs the ``bench`` extra (``pip install -e ".[bench]"``).
"""

from __future__ import annotations

import asyncio
import gc
import random
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx

from app.entities import CATALOG, Create, EntityStore
from app.entities.event_log import EventQuery, list_events
from app.entities.relay import Relay
from app.entities.schema import apply_migrations
from app.entities.sinks import BusSink
from app.events import DataEvent, InProcessEventBus
from benchmarks.core import BenchConfig, Measurement, case, percentile

CASE = "entities"
WRITERS = 16
BATCH = 100
TOKEN = "bench-token"


def _dsn(server: str, database: str) -> str:
    return urlunsplit(urlsplit(server)._replace(path=f"/{database}"))


def _document(n: int) -> dict[str, Any]:
    return {"title": f"doc {n}", "content": "x" * 64, "metadata": {"n": n, "tag": "bench"}}


class Baseline:
    """The ``eventsourcing`` application recorder on the same database (threads, psycopg)."""

    def __init__(self, dsn: str) -> None:
        from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore

        parts = urlsplit(dsn)
        self.datastore = PostgresDatastore(
            dbname=parts.path.lstrip("/"),
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 5432,
            user=parts.username or "postgres",
            password=parts.password or "",
            pool_size=WRITERS,
            max_overflow=0,
        )
        self.recorder = PostgresApplicationRecorder(self.datastore)
        self.recorder.create_table()
        self.threads = ThreadPoolExecutor(WRITERS)
        self._state = b'{"title":"doc","content":"' + b"x" * 64 + b'","metadata":{"n":1}}'

    def _event(self) -> Any:
        from eventsourcing.persistence import StoredEvent

        return StoredEvent(uuid.uuid4(), 1, "bench:DocumentCreated", self._state)

    def insert_one(self) -> None:
        self.recorder.insert_events([self._event()])

    def insert_batch(self) -> None:
        self.recorder.insert_events([self._event() for _ in range(BATCH)])

    async def rate(self, writers: int, calls_each: int, call: Callable[[], None]) -> float:
        """Calls per second with ``writers`` threads each making ``calls_each`` calls."""
        loop = asyncio.get_running_loop()
        barrier = threading.Barrier(writers)

        def worker() -> None:
            barrier.wait()
            for _ in range(calls_each):
                call()

        started = time.perf_counter()
        await asyncio.gather(*(loop.run_in_executor(self.threads, worker) for _ in range(writers)))
        return writers * calls_each / (time.perf_counter() - started)

    def close(self) -> None:
        self.threads.shutdown()
        self.datastore.close()


async def _our_rate(writers: int, calls_each: int, call: Callable[[], Awaitable[object]]) -> float:
    async def worker() -> None:
        for _ in range(calls_each):
            await call()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(writers)))
    return writers * calls_each / (time.perf_counter() - started)


async def _alternate(
    rounds: int, ours: Callable[[], Awaitable[float]], theirs: Callable[[], Awaitable[float]]
) -> tuple[float, float]:
    """Median of each side over alternating rounds (who goes first alternates too)."""
    our_rates: list[float] = []
    their_rates: list[float] = []
    for n in range(rounds):
        order = [(ours, our_rates), (theirs, their_rates)]
        for side, rates in order if n % 2 == 0 else order[::-1]:
            gc.collect()
            rates.append(await side())
    return statistics.median(our_rates), statistics.median(their_rates)


async def _writes(config: BenchConfig, store: EntityStore, baseline: Baseline) -> list[Measurement]:
    rounds = 3 if config.quick else 5
    scale = 1 if config.quick else 3
    counter = iter(range(10**9))

    def create() -> Awaitable[object]:
        return store.create("document", _document(next(counter)))

    def create_batch() -> Awaitable[object]:
        return store.apply([Create("document", _document(next(counter))) for _ in range(BATCH)])

    rows: list[Measurement] = []
    shapes: list[tuple[str, int, int, Callable[[], Awaitable[object]], Callable[[], None], int]] = [
        ("single-event change, 16 writers", WRITERS, 25 * scale, create, baseline.insert_one, 1),
        ("single-event change, 1 writer", 1, 150 * scale, create, baseline.insert_one, 1),
        (
            "batch of 100 changes, 1 writer",
            1,
            8 * scale,
            create_batch,
            baseline.insert_batch,
            BATCH,
        ),
    ]
    for metric, writers, calls, ours_call, theirs_call, per_call in shapes:

        async def ours(w: int = writers, c: int = calls, f: Any = ours_call) -> float:
            return await _our_rate(w, c, f)

        async def theirs(w: int = writers, c: int = calls, f: Any = theirs_call) -> float:
            return await baseline.rate(w, c, f)

        our_rate, their_rate = await _alternate(rounds, ours, theirs)
        rows.append(
            Measurement(
                CASE,
                metric,
                "events/s",
                our_rate * per_call,
                their_rate * per_call,
                "eventsourcing PostgresApplicationRecorder",
                ">=",
                1.0,
            )
        )
    return rows


KINDS = ("agent", "goal", "plan", "task", "document")
POPULATE = """
INSERT INTO events (global_position, event_id, event_type, entity_type, entity_id,
                    entity_version, payload, metadata, created_at)
SELECT nextval('events_global_position_seq'), gen_random_uuid(),
       (ARRAY['agent_created', 'goal_completed', 'plan_updated', 'task_started',
              'document_created'])[1 + (g / 10) % 5],
       (ARRAY['agent', 'goal', 'plan', 'task', 'document'])[1 + (g / 10) % 5],
       ('00000000-0000-4000-8000-' || lpad(to_hex(g / 10), 12, '0'))::uuid,
       1 + g % 10, '{"state": {"title": "t", "n": 1}}', '{"request_id": "r"}', now()
FROM generate_series($1::bigint, $2::bigint) AS g
"""


def _shapes(head: int, rng: random.Random) -> dict[str, Callable[[], EventQuery]]:
    def deep() -> int:
        return rng.randrange(1, max(2, head - 200))

    def entity() -> EventQuery:
        # POPULATE gave entity k (rows 10k..10k+9) the type KINDS[k % 5].
        k = rng.randrange(max(1, head // 10))
        entity_id = uuid.UUID(f"00000000-0000-4000-8000-{k:012x}")
        return EventQuery(entity_type=KINDS[k % 5], entity_id=entity_id)

    return {
        "first page": lambda: EventQuery(limit=100),
        "keyset page (after)": lambda: EventQuery(after=deep(), limit=100),
        "event_type + after": lambda: EventQuery(
            event_type="task_started", after=deep(), limit=100
        ),
        "entity_type + after": lambda: EventQuery(entity_type="goal", after=deep(), limit=100),
        "entity_type + entity_id": entity,
        "newest first, before": lambda: EventQuery(order="desc", before=deep(), limit=100),
    }


async def _listing(
    config: BenchConfig, pool: asyncpg.Pool, dsn: str, count: int
) -> list[Measurement]:
    async with pool.acquire() as conn:
        chunk = 100_000
        start = int(await conn.fetchval("SELECT coalesce(max(global_position), 0) FROM events"))
        for low in range(start + 1, start + count + 1, chunk):
            await conn.execute(POPULATE, low, min(low + chunk - 1, start + count))
        await conn.execute("ANALYZE events")
        head = int(await conn.fetchval("SELECT max(global_position) FROM events"))
    rng = random.Random(7)
    samples = 100 if config.quick else 300
    sql_p95: dict[str, float] = {}
    async with pool.acquire() as conn:
        for name, make in _shapes(head, rng).items():
            times = []
            for _ in range(samples):
                query = make()
                started = time.perf_counter()
                await list_events(conn, query)
                times.append((time.perf_counter() - started) * 1000)
            sql_p95[name] = percentile(times, 0.95)
    app_p95 = await _listing_through_app(dsn, head, samples)
    worst_sql = max(sql_p95, key=lambda k: sql_p95[k])
    worst_app = max(app_p95, key=lambda k: app_p95[k])
    label = f"{count // 1000}k events"
    return [
        Measurement(
            CASE,
            f"listing p95, worst shape ({worst_sql}), SQL layer, {label}",
            "ms",
            sql_p95[worst_sql],
            check="<=",
            bar=5.0,
            extra={"p95_ms_by_shape": sql_p95},
        ),
        Measurement(
            CASE,
            f"listing p95, worst shape ({worst_app}), through the app, {label}",
            "ms",
            app_p95[worst_app],
            check="<=",
            bar=15.0,
            extra={"p95_ms_by_shape": app_p95},
        ),
    ]


async def _listing_through_app(dsn: str, head: int, samples: int) -> dict[str, float]:
    from app.web import create_app
    from containers import create_container
    from settings import load_settings

    with tempfile.TemporaryDirectory() as root:
        settings = load_settings(
            data_dir=Path(root) / "data",
            postgres={"dsn": dsn},
            faiss={"index_path": Path(root) / "faiss", "dimension": 4},
            api={"tokens": [TOKEN], "rate_limit": 10**9},
            log={"level": "WARNING"},
            entities={"relay_enabled": False, "projections_enabled": False},
        )
        app = create_app(create_container(settings))
        rng = random.Random(11)
        results: dict[str, float] = {}
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(
                transport=transport,
                base_url="http://bench",
                headers={"Authorization": f"Bearer {TOKEN}"},
            ) as client:
                for name, make in _shapes(head, rng).items():
                    times = []
                    for _ in range(samples):
                        query = make()
                        params = {
                            k: str(v)
                            for k, v in vars(query).items()
                            if v is not None and k not in {"offset", "cursor"}
                        }
                        started = time.perf_counter()
                        response = await client.get("/api/events", params=params)
                        times.append((time.perf_counter() - started) * 1000)
                        if response.status_code != 200:
                            raise RuntimeError(f"{name}: {response.status_code} {response.text}")
                    results[name] = percentile(times, 0.95)
        return results


async def _relay_latency(
    config: BenchConfig, pool: asyncpg.Pool, store: EntityStore
) -> list[Measurement]:
    async with pool.acquire() as conn:
        head = int(await conn.fetchval("SELECT coalesce(max(global_position), 0) FROM events"))
        await conn.execute(
            "INSERT INTO event_checkpoints (name, position) VALUES ('relay:bench', $1) "
            "ON CONFLICT (name) DO UPDATE SET position = $1",
            head,
        )
    bus = InProcessEventBus()
    await bus.start()
    arrived: dict[uuid.UUID, float] = {}
    waiting: dict[uuid.UUID, asyncio.Event] = {}

    async def handler(event: DataEvent) -> None:
        arrived[event.id] = time.perf_counter()
        if event.id in waiting:
            waiting[event.id].set()

    bus.subscribe_all(handler)
    relay = Relay(pool, BusSink(bus, name="bench"), poll_interval_s=1.0)
    store.add_commit_listener(relay.wake)
    await relay.start()
    latencies: list[float] = []
    try:
        for n in range(100 if config.quick else 300):
            written = await store.create("document", _document(n))
            committed = time.perf_counter()
            assert written.event is not None
            event_id = written.event.event_id
            if event_id not in arrived:
                waiting[event_id] = asyncio.Event()
                async with asyncio.timeout(10):
                    await waiting[event_id].wait()
            latencies.append((arrived[event_id] - committed) * 1000)
    finally:
        store.remove_commit_listener(relay.wake)
        await relay.stop()
        await bus.close(1.0)
    latencies = [max(0.0, value) for value in latencies]
    return [
        Measurement(CASE, "relay commit -> in-process delivery p50", "ms",
                    percentile(latencies, 0.5), check="<=", bar=20.0),
        Measurement(CASE, "relay commit -> in-process delivery p99", "ms",
                    percentile(latencies, 0.99), check="<=", bar=100.0),
    ]  # fmt: skip


@case(CASE)
async def entities(config: BenchConfig) -> list[Measurement]:
    database = f"bench_entities_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(config.postgres_dsn)
    await admin.execute(f'CREATE DATABASE "{database}"')
    dsn = _dsn(config.postgres_dsn, database)
    rows: list[Measurement] = []
    try:
        pool = await asyncpg.create_pool(dsn, min_size=WRITERS, max_size=WRITERS + 4)
        baseline = await asyncio.to_thread(Baseline, dsn)
        try:
            await apply_migrations(pool)
            store = EntityStore(pool, CATALOG)
            rows += await _writes(config, store, baseline)
            rows += await _relay_latency(config, pool, store)
            rows += await _listing(config, pool, dsn, 100_000 if config.quick else 1_000_000)
        finally:
            await asyncio.to_thread(baseline.close)
            await pool.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.close()
    return rows
