"""Event use cases: publish, and stream the events matching a pattern."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

import structlog
from dependency_injector.wiring import Provide, inject

from app.events import DataEvent, EventBus
from containers.application import Container

__all__ = ["publish_event", "stream_events"]

log = structlog.get_logger(__name__)

STREAM_BUFFER = 1000


@inject
async def publish_event(event: DataEvent, *, bus: EventBus = Provide[Container.event_bus]) -> None:
    """Publish ``event``; returns once the bus accepted it (RabbitMQ: after the confirm)."""
    await bus.publish(event)


class StreamOverflowError(RuntimeError):
    """The consumer of a stream fell more than ``STREAM_BUFFER`` events behind."""


@inject
async def stream_events(
    pattern: str,
    stop: asyncio.Event,
    *,
    bus: EventBus = Provide[Container.event_bus],
) -> AsyncGenerator[DataEvent, None]:
    """Yield every event matching ``pattern`` published after the subscription is live.

    Ends when ``stop`` is set; raises ``StreamOverflowError`` if the consumer falls more than
    ``STREAM_BUFFER`` events behind (rather than buffering without bound or dropping silently).
    """
    queue: asyncio.Queue[DataEvent] = asyncio.Queue(STREAM_BUFFER)
    overflowed = asyncio.Event()

    async def forward(event: DataEvent) -> None:
        try:
            queue.put_nowait(event)
        except asyncio.QueueFull:
            overflowed.set()

    subscription = bus.subscribe(pattern, forward)
    try:
        await subscription
        stopping = asyncio.ensure_future(stop.wait())
        try:
            while not stop.is_set():
                if overflowed.is_set():
                    raise StreamOverflowError(
                        f"stream for {pattern!r} fell {STREAM_BUFFER} events behind"
                    )
                getting = asyncio.ensure_future(queue.get())
                done, _ = await asyncio.wait(
                    {getting, stopping}, return_when=asyncio.FIRST_COMPLETED
                )
                if getting not in done:
                    getting.cancel()
                    break
                yield getting.result()
        finally:
            stopping.cancel()
    finally:
        bus.unsubscribe(subscription)
