"""KeyboardInterrupt and SystemExit from a handler: the delivery is settled, then they propagate.

Such an interrupt escapes the event loop (asyncio re-raises it from ``run_forever``), so
the in-process case runs on a loop of its own; the RabbitMQ case drives the consumer's
dispatcher directly with a fake incoming message (no broker needed to see the settling).
"""

from __future__ import annotations

import asyncio
from typing import Any
from unittest.mock import AsyncMock, Mock

import pytest
from aio_pika.abc import AbstractIncomingMessage

from app.events import DataEvent, InProcessEventBus
from app.events.codec import encode
from app.events.rabbitmq_consumer import RabbitMQConsumer
from app.events.subscription import BusStats, Subscription

INTERRUPTS = [KeyboardInterrupt, SystemExit]


def _interrupting_handler(
    interrupt: type[BaseException], runs: list[int], *, fail_first: bool = False
) -> Any:
    async def handler(received: DataEvent) -> None:
        runs.append(received.payload["n"])
        if received.payload["n"] == 1:
            if fail_first and len(runs) == 1:
                raise RuntimeError("an ordinary failure first")
            raise interrupt("stop")

    return handler


def _fake_message(sent: DataEvent) -> Mock:
    message = Mock(spec=AbstractIncomingMessage)
    message.body = encode(sent, 10**6).body
    message.message_id = str(sent.id)
    message.ack = AsyncMock()
    message.nack = AsyncMock()
    message.reject = AsyncMock()
    return message


def _consumer(handler: Any, max_attempts: int, stats: BusStats) -> RabbitMQConsumer:
    subscription = Subscription(
        ("int.*",), handler, group=None, concurrency=1, max_attempts=max_attempts
    )
    return RabbitMQConsumer(
        subscription,
        queue="unused",
        stats=stats,
        handler_timeout_s=5.0,
        retry_backoff_s=0.01,
        on_error=lambda error: None,
        on_declared=lambda name: None,
    )


@pytest.mark.parametrize("interrupt", INTERRUPTS)
async def test_rabbitmq_interrupt_with_attempts_left_nacks_for_redelivery(
    interrupt: type[BaseException],
) -> None:
    """RabbitMQ: an interrupt on an attempt that is not the last nacks (requeue) and re-raises."""
    stats = BusStats()
    runs: list[int] = []
    consumer = _consumer(_interrupting_handler(interrupt, runs), 3, stats)
    message = _fake_message(DataEvent("int.x", "r", "k", {"n": 1}))
    with pytest.raises(interrupt, match="stop"):
        await consumer.dispatcher.run(message)
    assert runs == [1]
    message.nack.assert_awaited_once_with(requeue=True)
    message.ack.assert_not_awaited()
    message.reject.assert_not_awaited()
    assert (stats.failed_attempts, stats.dead_lettered, stats.dropped) == (1, 0, 1)
    assert consumer.dispatcher.pending == 0
    assert consumer.dispatcher.idle.is_set()


@pytest.mark.parametrize("interrupt", INTERRUPTS)
async def test_rabbitmq_interrupt_on_the_last_attempt_dead_letters(
    interrupt: type[BaseException],
) -> None:
    """RabbitMQ: an interrupt on the last attempt (after an ordinary failure) dead-letters, then
    re-raises."""
    stats = BusStats()
    runs: list[int] = []
    consumer = _consumer(_interrupting_handler(interrupt, runs, fail_first=True), 2, stats)
    message = _fake_message(DataEvent("int.x", "r", "k", {"n": 1}))
    with pytest.raises(interrupt, match="stop"):
        await consumer.dispatcher.run(message)
    assert runs == [1, 1]
    message.reject.assert_awaited_once_with(requeue=False)
    message.nack.assert_not_awaited()
    message.ack.assert_not_awaited()
    assert (stats.failed_attempts, stats.dead_lettered, stats.dropped) == (2, 1, 0)
    assert consumer.dispatcher.pending == 0


@pytest.mark.parametrize("max_attempts", [1, 3])
@pytest.mark.parametrize("interrupt", INTERRUPTS)
def test_in_process_interrupt_is_settled_then_propagates_and_the_bus_goes_on(
    interrupt: type[BaseException], max_attempts: int
) -> None:
    """In-process: an interrupt leaves the loop after its delivery was settled (dead letter on
    the last attempt, else dropped); later events still run and drain() returns."""
    loop = asyncio.new_event_loop()
    bus = InProcessEventBus(retry_backoff_s=0.01)
    runs: list[int] = []
    bus.subscribe("int.*", _interrupting_handler(interrupt, runs), max_attempts=max_attempts)
    interrupted = DataEvent("int.x", "r", "k", {"n": 1})

    async def publish_and_wait() -> None:
        await bus.publish(interrupted)
        await asyncio.sleep(10)  # the interrupt ends run_until_complete long before

    async def later_event_and_drain() -> None:
        await bus.publish(DataEvent("int.x", "r", "k", {"n": 2}))
        await bus.drain(5, fail_fast=False)

    main = loop.create_task(publish_and_wait())
    try:
        with pytest.raises(interrupt, match="stop"):
            loop.run_until_complete(main)
        assert runs == [1]
        assert bus.stats.failed_attempts == 1
        if max_attempts == 1:
            assert [letter.event for letter in bus.dead_letters] == [interrupted]
            assert bus.stats.dropped == 0
        else:
            assert list(bus.dead_letters) == []
            assert bus.stats.dropped == 1
        loop.run_until_complete(later_event_and_drain())
        assert runs == [1, 2]
        assert bus.stats.delivered == 1
    finally:
        main.cancel()
        loop.run_until_complete(asyncio.gather(main, return_exceptions=True))
        loop.run_until_complete(bus.close(timeout=1))
        loop.close()
