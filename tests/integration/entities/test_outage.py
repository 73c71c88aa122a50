"""D7 through outages: with RabbitMQ and Redis cut (a loopback proxy), writes keep succeeding
(the events wait in the table), readiness says why, and once the brokers are back every event
reaches both sinks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import aio_pika
import asyncpg
import pytest
import redis.asyncio as aioredis

from app.entities import EntityStore
from app.entities.relay import Relay
from app.entities.runtime import Entities
from app.entities.sinks import BusSink, RedisPubSubSink
from app.errors import EntitiesNotReadyError
from app.events import DataEvent, RabbitMQEventBus
from tests.contract.events_support import BusFactory
from tests.fakes.tcp_proxy import TcpProxy
from tests.integration.entities.support import eventually

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
async def redis_proxy(redis_url: str) -> AsyncIterator[TcpProxy]:
    """A proxy in front of Redis that the test can cut."""
    parts = urlsplit(redis_url)
    tcp = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 6379)
    await tcp.start()
    yield tcp
    await tcp.aclose()


async def test_d7_writes_go_on_and_delivery_resumes_after_a_cut(
    store: EntityStore,
    pool: asyncpg.Pool,
    buses: BusFactory,
    proxy: TcpProxy,
    redis_proxy: TcpProxy,
    redis_url: str,
) -> None:
    """Cut both brokers while writing: no write fails, the relays report the failure, and
    after the cut both sinks receive every event."""
    consumer = await buses.make()
    on_bus: list[DataEvent] = []

    async def record(event: DataEvent) -> None:
        on_bus.append(event)

    subscription = consumer.subscribe("#", record, group="outage-test")
    await subscription
    via_proxy = await aio_pika.connect_robust(
        f"amqp://guest:guest@127.0.0.1:{proxy.port}/", reconnect_interval=0.2
    )
    bus = RabbitMQEventBus(via_proxy, exchange=buses.exchange, publish_timeout_s=1.0)
    await bus.start()
    redis_via_proxy = aioredis.Redis(
        port=redis_proxy.port, socket_timeout=1.0, socket_connect_timeout=1.0
    )
    direct = aioredis.from_url(redis_url)
    pubsub = direct.pubsub()
    await pubsub.psubscribe("events:*")
    await pubsub.get_message(timeout=1.0)
    on_redis: list[bytes] = []

    async def listen() -> None:
        async for message in pubsub.listen():
            if message["type"] == "pmessage":
                on_redis.append(message["data"])

    listener = asyncio.create_task(listen())
    relays = [
        Relay(pool, BusSink(bus), poll_interval_s=0.1, max_backoff_s=0.3, publish_timeout_s=2),
        Relay(
            pool,
            RedisPubSubSink(redis_via_proxy),
            poll_interval_s=0.1,
            max_backoff_s=0.3,
            publish_timeout_s=2,
        ),
    ]
    entities = Entities(store, pool, relays)
    await entities.start()
    try:
        for n in range(10):
            await store.create("document", {"title": f"before {n}"})
        await eventually(lambda: len(on_bus) == 10 and len(on_redis) == 10, what="first 10")
        await proxy.cut()
        await redis_proxy.cut()
        for n in range(30):
            await store.create("document", {"title": f"during {n}"})
        await eventually(
            lambda: all(r.status().last_error for r in relays), what="both relays failing"
        )
        with pytest.raises(EntitiesNotReadyError) as caught:
            await entities.ping()
        assert caught.value.details["relay:bus"]["lag"] > 0  # type: ignore[index]
        await proxy.restore()
        await redis_proxy.restore()
        await eventually(
            lambda: len({e.id for e in on_bus}) == 40 and len(set(on_redis)) == 40,
            timeout_s=60,
            what="every event on both sinks after the cut",
        )
    finally:
        await entities.stop()
        listener.cancel()
        await pubsub.aclose()  # type: ignore[no-untyped-call]
        await direct.aclose()
        await redis_via_proxy.aclose()
        await bus.close(2.0)
        await via_proxy.close()
    stored = await pool.fetch("SELECT event_id FROM events ORDER BY global_position")
    assert [row["event_id"] for row in stored] == list(dict.fromkeys(e.id for e in on_bus))
