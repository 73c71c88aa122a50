"""Case ``events``: both event buses against raw aio-pika and the original inline bus.

RabbitMQ figures alternate ours and raw aio-pika in short rounds on the same exchange and
queue type (durable, persistent messages, publisher confirms); each side's median counts:

- publish: 100 publishes in flight (``asyncio.gather`` windows of 100) vs raw
  ``exchange.publish`` of the same bytes in the same windows;
- consume: a pre-filled durable queue drained by a subscription with ``concurrency=100``
  (prefetch 100) and a counting handler vs raw ``queue.consume`` with manual ack and the
  same prefetch, both timed from the first to the last message handled;
- latency: one event at a time, publish (confirmed) until the handler ran; median.

In-process: build, publish (encode and checks) and handle events with one subscriber;
absolute bars 150k events/s and a 50 µs median latency. The original design's inline bus
(a loop awaiting each handler in ``publish``) is printed beside it as the reference for
what isolation and the codec cost.
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

import aio_pika
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection

from app.events import DataEvent, InProcessEventBus, RabbitMQEventBus
from app.events.codec import encode
from benchmarks.core import BenchConfig, Measurement, case

WINDOW = 100
CASE = "events"


def make_event(n: int, type_: str = "bench.tick") -> DataEvent:
    return DataEvent(type_, "bench", str(n), {"n": n, "name": "tick"}, "bench")


# -- RabbitMQ ---------------------------------------------------------------------------


async def _alternate(
    rounds: int, ours: Callable[[], Awaitable[float]], raw: Callable[[], Awaitable[float]]
) -> tuple[float, float]:
    """Alternate ``ours`` and ``raw`` (who goes first alternates too); the median of each.

    Short alternating rounds put both sides under the same machine conditions; on a
    shared 2-core machine single long runs differ by +-15% from one minute to the next.
    Each side starts from a collected heap, so neither pays for the other's garbage.
    """
    ours_rates: list[float] = []
    raw_rates: list[float] = []

    async def timed(side: Callable[[], Awaitable[float]], rates: list[float]) -> None:
        gc.collect()
        rates.append(await side())

    for round_ in range(rounds):
        if round_ % 2:
            await timed(raw, raw_rates)
            await timed(ours, ours_rates)
        else:
            await timed(ours, ours_rates)
            await timed(raw, raw_rates)
    return statistics.median(ours_rates), statistics.median(raw_rates)


async def _publish_rate(
    connection: AbstractRobustConnection, exchange: str, count: int, rounds: int
) -> tuple[float, float]:
    bus = RabbitMQEventBus(connection, exchange=exchange)
    await bus.start()
    channel = await connection.channel(publisher_confirms=True)
    raw_exchange = await channel.declare_exchange(
        exchange, aio_pika.ExchangeType.TOPIC, durable=True
    )
    sink = await channel.declare_queue(f"{exchange}.sink", durable=True)
    await sink.bind(raw_exchange, "bench.#")

    async def ours() -> float:
        events = [make_event(n) for n in range(count)]
        started = time.perf_counter()
        for offset in range(0, count, WINDOW):
            await asyncio.gather(*(bus.publish(item) for item in events[offset : offset + WINDOW]))
        elapsed = time.perf_counter() - started
        await sink.purge()
        return count / elapsed

    async def raw() -> float:
        events = [make_event(n) for n in range(count)]
        bodies = [(encode(item, 1 << 20).body, item) for item in events]
        started = time.perf_counter()
        for offset in range(0, count, WINDOW):
            await asyncio.gather(
                *(
                    raw_exchange.publish(
                        aio_pika.Message(
                            body,
                            content_type="application/json",
                            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                            message_id=str(item.id),
                            type=item.type,
                            timestamp=item.timestamp,
                        ),
                        routing_key=item.type,
                        mandatory=True,
                    )
                    for body, item in bodies[offset : offset + WINDOW]
                )
            )
        elapsed = time.perf_counter() - started
        await sink.purge()
        return count / elapsed

    try:
        return await _alternate(rounds, ours, raw)
    finally:
        await sink.purge()
        await sink.delete()
        await channel.close()
        await bus.close()


async def _fill(
    connection: AbstractRobustConnection, exchange: str, type_: str, count: int
) -> None:
    channel = await connection.channel(publisher_confirms=True)
    target = await channel.get_exchange(exchange)
    body_events = [make_event(n, type_) for n in range(count)]
    for offset in range(0, count, WINDOW):
        await asyncio.gather(
            *(
                target.publish(
                    aio_pika.Message(
                        encode(item, 1 << 20).body,
                        content_type="application/json",
                        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                        message_id=str(item.id),
                        type=item.type,
                    ),
                    routing_key=item.type,
                )
                for item in body_events[offset : offset + WINDOW]
            )
        )
    await channel.close()


async def _consume_rate(
    connection: AbstractRobustConnection, exchange: str, count: int, rounds: int
) -> tuple[float, float]:
    setup = RabbitMQEventBus(connection, exchange=exchange)
    await setup.start()

    async def noop(received: DataEvent) -> None:
        return None

    await setup.subscribe("bench.consume", noop, group="bench", concurrency=WINDOW)
    queue_names = set(setup.queue_names)
    await setup.close()
    channel = await connection.channel()
    await channel.set_qos(prefetch_count=WINDOW)
    raw_queue = await channel.declare_queue(f"{exchange}.raw", durable=True)
    await raw_queue.bind(exchange, "bench.raw")

    async def ours() -> float:
        await _fill(connection, exchange, "bench.consume", count)
        bus = RabbitMQEventBus(connection, exchange=exchange)
        await bus.start()
        done = asyncio.Event()
        seen = 0
        first = 0.0

        async def counting(received: DataEvent) -> None:
            nonlocal seen, first
            seen += 1
            if seen == 1:
                first = time.perf_counter()
            elif seen == count:
                done.set()

        await bus.subscribe("bench.consume", counting, group="bench", concurrency=WINDOW)
        await done.wait()
        elapsed = time.perf_counter() - first
        await bus.drain(30)  # the last acks
        await bus.close()
        return (count - 1) / elapsed

    async def raw() -> float:
        await _fill(connection, exchange, "bench.raw", count)
        done = asyncio.Event()
        seen = 0
        first = 0.0

        async def counting(message: AbstractIncomingMessage) -> None:
            nonlocal seen, first
            seen += 1
            if seen == 1:
                first = time.perf_counter()
            elif seen == count:
                done.set()
            await message.ack()

        tag = await raw_queue.consume(counting)
        await done.wait()
        elapsed = time.perf_counter() - first
        await raw_queue.cancel(tag)
        return (count - 1) / elapsed

    try:
        return await _alternate(rounds, ours, raw)
    finally:
        await raw_queue.purge()
        await raw_queue.delete()
        for name in queue_names:
            await channel.queue_delete(name)
        await channel.close()


async def _latency(
    connection: AbstractRobustConnection, exchange: str, count: int
) -> tuple[float, float]:
    bus = RabbitMQEventBus(connection, exchange=exchange)
    await bus.start()
    loop = asyncio.get_running_loop()
    waiter: asyncio.Future[None] = loop.create_future()

    async def signal(received: DataEvent) -> None:
        if not waiter.done():
            waiter.set_result(None)

    await bus.subscribe("bench.latency", signal)
    channel = await connection.channel(publisher_confirms=True)
    raw_exchange = await channel.get_exchange(exchange)
    raw_queue = await channel.declare_queue(exclusive=True)
    await raw_queue.bind(exchange, "bench.rawlatency")

    async def raw_signal(message: AbstractIncomingMessage) -> None:
        await message.ack()
        if not waiter.done():
            waiter.set_result(None)

    tag = await raw_queue.consume(raw_signal)
    ours_samples: list[float] = []
    raw_samples: list[float] = []
    for n in range(count):
        waiter = loop.create_future()
        item = make_event(n, "bench.latency")
        started = time.perf_counter()
        await bus.publish(item)
        await waiter
        ours_samples.append(time.perf_counter() - started)
        waiter = loop.create_future()
        item = make_event(n, "bench.rawlatency")
        started = time.perf_counter()
        await raw_exchange.publish(
            aio_pika.Message(
                encode(item, 1 << 20).body,
                content_type="application/json",
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                message_id=str(item.id),
                type=item.type,
                timestamp=item.timestamp,
            ),
            routing_key=item.type,
            mandatory=True,
        )
        await waiter
        raw_samples.append(time.perf_counter() - started)
    await raw_queue.cancel(tag)
    await channel.close()
    await bus.close()
    return statistics.median(ours_samples) * 1e3, statistics.median(raw_samples) * 1e3


async def rabbitmq_measurements(config: BenchConfig) -> list[Measurement]:
    connection = await aio_pika.connect_robust(config.rabbitmq_url)
    exchange = f"bench.events.{uuid.uuid4().hex[:8]}"
    rounds = 3 if config.quick else 12
    count = 500 if config.quick else 1000
    try:
        publish_ours, publish_raw = await _publish_rate(connection, exchange, count, rounds)
        consume_ours, consume_raw = await _consume_rate(connection, exchange, 2 * count, rounds)
        latency_ours, latency_raw = await _latency(
            connection, exchange, 100 if config.quick else 400
        )
    finally:
        channel = await connection.channel()
        await channel.queue_delete(f"{exchange}.dead-letter")
        await channel.exchange_delete(exchange)
        await channel.exchange_delete(f"{exchange}.dead-letter")
        await channel.close()
        await connection.close()
    return [
        Measurement(
            CASE,
            "rabbitmq publish, 100 in flight",
            "msgs/s",
            publish_ours,
            publish_raw,
            "aio-pika gather windows of 100",
            ">=",
            0.9,
        ),
        Measurement(
            CASE,
            "rabbitmq consume, prefetch 100",
            "msgs/s",
            consume_ours,
            consume_raw,
            "aio-pika manual ack, prefetch 100",
            ">=",
            0.9,
        ),
        Measurement(
            CASE,
            "rabbitmq publish->handler median",
            "ms",
            latency_ours,
            latency_raw,
            "aio-pika publish->callback",
            "<=",
            1.2,
        ),
    ]


# -- in-process -------------------------------------------------------------------------


class InlineBus:
    """The original design's bus: ``publish`` awaits every matching handler in turn."""

    def __init__(self) -> None:
        self._handlers: dict[str, list[Callable[[DataEvent], Awaitable[Any]]]] = defaultdict(list)

    def subscribe(self, event_type: str, handler: Callable[[DataEvent], Awaitable[Any]]) -> None:
        self._handlers[event_type].append(handler)

    async def publish(self, event: DataEvent) -> None:
        for handler in self._handlers.get(event.type, ()):
            await handler(event)


async def _inprocess_rate(count: int) -> float:
    bus = InProcessEventBus()
    seen = 0

    async def counting(received: DataEvent) -> None:
        nonlocal seen
        seen += 1

    bus.subscribe("bench.tick", counting)
    started = time.perf_counter()
    for n in range(count):
        await bus.publish(DataEvent("bench.tick", "bench", "k", {"n": n, "name": "tick"}, "bench"))
    await bus.drain()
    elapsed = time.perf_counter() - started
    await bus.close()
    assert seen == count
    return count / elapsed


async def _inline_rate(count: int) -> float:
    bus = InlineBus()
    seen = 0

    async def counting(received: DataEvent) -> None:
        nonlocal seen
        seen += 1

    bus.subscribe("bench.tick", counting)
    started = time.perf_counter()
    for n in range(count):
        await bus.publish(DataEvent("bench.tick", "bench", "k", {"n": n, "name": "tick"}, "bench"))
    elapsed = time.perf_counter() - started
    assert seen == count
    return count / elapsed


async def _inprocess_latency(count: int) -> tuple[float, float]:
    loop = asyncio.get_running_loop()
    handled_at = 0.0
    waiter: asyncio.Future[None] = loop.create_future()

    async def stamp(received: DataEvent) -> None:
        nonlocal handled_at
        handled_at = time.perf_counter()
        waiter.set_result(None)

    bus = InProcessEventBus()
    bus.subscribe("bench.tick", stamp)
    inline = InlineBus()
    inline.subscribe("bench.tick", stamp)
    ours: list[float] = []
    reference: list[float] = []
    for n in range(count):
        item = make_event(n)
        waiter = loop.create_future()
        started = time.perf_counter()
        await bus.publish(item)
        await waiter
        ours.append(handled_at - started)
        waiter = loop.create_future()
        started = time.perf_counter()
        await inline.publish(item)
        reference.append(handled_at - started)
    await bus.close()
    return statistics.median(ours) * 1e6, statistics.median(reference) * 1e6


async def inprocess_measurements(config: BenchConfig) -> list[Measurement]:
    count = 50_000 if config.quick else 200_000
    await _inprocess_rate(5_000)  # warm-up
    ours = max([await _inprocess_rate(count) for _ in range(3)])
    inline = max([await _inline_rate(count) for _ in range(3)])
    latency, inline_latency = await _inprocess_latency(2_000 if config.quick else 10_000)
    return [
        Measurement(
            CASE,
            "in-process throughput, 1 subscriber",
            "events/s",
            ours,
            check=">=",
            bar=150_000,
            extra={"original_inline_bus": inline},
        ),
        Measurement(CASE, "original inline bus throughput (reference)", "events/s", inline),
        Measurement(
            CASE,
            "in-process publish->handler median",
            "us",
            latency,
            check="<=",
            bar=50,
            extra={"original_inline_bus": inline_latency},
        ),
        Measurement(
            CASE, "original inline bus publish->handler median (reference)", "us", inline_latency
        ),
    ]


@case(CASE)
async def events_case(config: BenchConfig) -> list[Measurement]:
    # RabbitMQ first: the in-process run leaves a large heap behind that slows the
    # (allocation-heavier) side measured after it by a few percent.
    rows = await rabbitmq_measurements(config)
    gc.collect()
    rows[:0] = await inprocess_measurements(config)
    return rows
