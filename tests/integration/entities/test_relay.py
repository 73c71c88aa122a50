"""The relay (D7, D8): in order, at least once, checkpoint after acknowledgement, one active
relay per sink, the bus and Redis pub/sub as sinks."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis

from app.entities import EntityStore
from app.entities.relay import Relay
from app.entities.runtime import Entities
from app.entities.sinks import BusSink, RedisPubSubSink
from app.errors import EntitiesNotReadyError
from app.events import DataEvent, InProcessEventBus
from tests.integration.entities.support import FlakySink, RecordingSink, SlowSink, eventually

pytestmark = pytest.mark.integration


@pytest.fixture
async def bus() -> AsyncIterator[InProcessEventBus]:
    """A started in-process bus."""
    made = InProcessEventBus()
    await made.start()
    yield made
    await made.close(1.0)


async def checkpoint(pool: asyncpg.Pool, name: str) -> int | None:
    value = await pool.fetchval("SELECT position FROM event_checkpoints WHERE name = $1", name)
    return None if value is None else int(value)


async def make_documents(store: EntityStore, count: int) -> None:
    for n in range(count):
        await store.create("document", {"title": f"d{n}"})


@contextlib.asynccontextmanager
async def two_relays(
    database: str, sink: RecordingSink, **options: Any
) -> AsyncIterator[tuple[Relay, Relay]]:
    """Two relays for one sink, each on a pool of its own (as in two processes); both are
    stopped and their pools closed on the way out."""
    first_pool = await asyncpg.create_pool(database, min_size=1, max_size=2)
    second_pool = await asyncpg.create_pool(database, min_size=1, max_size=2)
    first = Relay(first_pool, sink, standby_retry_s=0.05, **options)
    second = Relay(second_pool, sink, standby_retry_s=0.05, **options)
    try:
        yield first, second
    finally:
        await first.stop()
        await second.stop()
        await first_pool.close()
        await second_pool.close()


async def test_d7_bus_gets_every_event_in_order_with_its_id(
    store: EntityStore, pool: asyncpg.Pool, bus: InProcessEventBus
) -> None:
    """D7/D8: every committed event reaches the bus in position order as a DataEvent whose
    id is the event id and whose type is the event type."""
    received: list[DataEvent] = []

    async def handler(event: DataEvent) -> None:
        received.append(event)

    bus.subscribe_all(handler)
    relay = Relay(pool, BusSink(bus), batch_size=7, poll_interval_s=0.05)
    store.add_commit_listener(relay.wake)
    await relay.start()
    try:
        await make_documents(store, 30)
        await eventually(lambda: len(received) == 30, what="30 deliveries")
    finally:
        await relay.stop()
    stored = await pool.fetch("SELECT event_id, event_type FROM events ORDER BY global_position")
    assert [(e.id, e.type) for e in received] == [(r["event_id"], r["event_type"]) for r in stored]
    assert [e.payload["global_position"] for e in received] == list(range(1, 31))
    assert await checkpoint(pool, "relay:bus") == 30


async def test_d7_a_failing_sink_keeps_the_checkpoint_and_retries(
    store: EntityStore, pool: asyncpg.Pool
) -> None:
    """D7: while the sink fails, the checkpoint stays and readiness says why; then every
    event arrives, none lost."""
    sink = FlakySink()
    relay = Relay(pool, sink, poll_interval_s=0.05, max_backoff_s=0.2)
    entities = Entities(store, pool, [relay])
    await make_documents(store, 5)
    await entities.start()
    try:
        await eventually(lambda: sink.attempts >= 2, what="a retried attempt")
        with pytest.raises(
            EntitiesNotReadyError, match="publish to flaky failed: ConnectionError"
        ) as caught:
            await entities.ping()
        assert caught.value.details["relay:flaky"]["lag"] == 5  # type: ignore[index]
        assert await checkpoint(pool, "relay:flaky") == 0
        sink.down = False
        await eventually(lambda: len(sink.events) == 5, what="delivery after recovery")

        async def caught_up() -> bool:
            return await checkpoint(pool, "relay:flaky") == 5

        await eventually(caught_up, what="the checkpoint moving after the acknowledgement")
        details = await entities.ping()
        assert details["relay:flaky"]["lag"] == 0
    finally:
        await entities.stop()
    assert sink.positions == [1, 2, 3, 4, 5]


async def test_d7_one_active_relay_per_sink(store: EntityStore, database: str) -> None:
    """D7: two relays for one sink (as in two processes): one publishes; when it stops the
    other takes over from the checkpoint; each event is delivered once."""
    shared = RecordingSink("shared")
    async with two_relays(database, shared, poll_interval_s=0.05) as (first, second):
        await first.start()
        await eventually(lambda: first.status().active, what="the first relay active")
        await second.start()
        await make_documents(store, 10)
        await eventually(lambda: len(shared.events) == 10, what="10 deliveries")
        assert not second.status().active
        await first.stop()
        await make_documents(store, 10)
        await eventually(lambda: len(shared.events) == 20, what="the standby taking over")
        assert second.status().active
    assert shared.positions == list(range(1, 21))


async def test_d7_a_stopped_relay_finishes_its_batch_in_flight(
    store: EntityStore, pool: asyncpg.Pool, database: str
) -> None:
    """D7: a relay stopped while a batch is on its way waits for the sink's acknowledgement
    and moves its checkpoint first; the relay taking over sends none of that batch again."""
    await make_documents(store, 100)
    shared = SlowSink("shared-slow")
    async with two_relays(database, shared, batch_size=40) as (first, second):
        await first.start()
        async with asyncio.timeout(10):
            await shared.started.wait()
        await second.start()
        await first.stop()
        assert len(shared.events) == 40, "the stop cut the batch in flight short"
        assert await checkpoint(pool, "relay:shared-slow") == 40
        await eventually(lambda: len(shared.events) >= 100, what="the standby taking over")
    assert shared.positions == list(range(1, 101))


async def test_d7_a_stop_waits_no_longer_than_the_publish_timeout(
    store: EntityStore, pool: asyncpg.Pool
) -> None:
    """A sink that never acknowledges holds a stop for ``publish_timeout_s`` at most; the
    batch stays unacknowledged (the checkpoint does not move)."""
    await make_documents(store, 3)
    sink = SlowSink("hanging", delay_s=None)
    relay = Relay(pool, sink, publish_timeout_s=0.3)
    await relay.start()
    async with asyncio.timeout(10):
        await sink.started.wait()
    async with asyncio.timeout(2):
        await relay.stop()
    assert sink.events == []
    assert await checkpoint(pool, "relay:hanging") == 0


async def test_d8_redis_pubsub_gets_the_event_json(
    store: EntityStore, pool: asyncpg.Pool, redis_url: str
) -> None:
    """D8: Redis subscribers of events:{event_type} get the event as a JSON object with
    the listed fields."""
    client = aioredis.from_url(redis_url)
    pubsub = client.pubsub()
    await pubsub.subscribe("events:document_created")
    await pubsub.get_message(timeout=1.0)  # the subscribe confirmation
    relay = Relay(pool, RedisPubSubSink(client, name="redis-test"), poll_interval_s=0.05)
    await relay.start()
    try:
        written = await store.create("document", {"title": "hello"})
        message = None
        async with asyncio.timeout(10):
            while message is None:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
    finally:
        await relay.stop()
        await pubsub.aclose()  # type: ignore[no-untyped-call]
        await client.aclose()
    body = json.loads(message["data"])
    assert written.event is not None
    assert body == written.event.as_json() | {"timestamp": body["timestamp"]}
    assert set(body) >= {
        "event_id",
        "event_type",
        "entity_type",
        "entity_id",
        "entity_version",
        "global_position",
        "payload",
        "metadata",
        "timestamp",
    }


async def test_closing_the_pool_lets_the_consumers_go(store: EntityStore, database: str) -> None:
    """pool.close() returns while a relay and a projection run: they let their connections
    go (close() waits for every connection) and end."""
    from app.entities.projections import AgentGoalStats, ProjectionRunner

    own = await asyncpg.create_pool(database, min_size=1, max_size=4)
    relay = Relay(own, RecordingSink("closing"), poll_interval_s=0.05)
    runner = ProjectionRunner(own, AgentGoalStats(), poll_interval_s=0.05)
    await relay.start()
    await runner.start()
    await eventually(
        lambda: relay.status().active and runner.status().active, what="both consumers active"
    )
    async with asyncio.timeout(5):
        await own.close()
    await relay.stop()
    await runner.stop()
    assert not relay.status().active
    assert not runner.status().active
