"""Event use cases: publish, and stream the events matching a pattern."""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Self

from dependency_injector.wiring import Provide, inject

from app.errors import StreamOverflowError
from app.events import DataEvent, EventBus, Subscription
from containers.application import Container

__all__ = ["EventStream", "StreamOverflowError", "open_event_stream", "publish_event"]

STREAM_BUFFER = 1000


@inject
async def publish_event(event: DataEvent, *, bus: EventBus = Provide[Container.event_bus]) -> None:
    """Publish ``event``; returns once the bus accepted it (RabbitMQ: after the confirm)."""
    await bus.publish(event)


class EventStream:
    """The events matching a pattern, from the moment ``async with`` returns (it is live then).

    Buffers up to ``STREAM_BUFFER`` events; a consumer that falls further behind gets
    ``StreamOverflowError`` instead of unbounded memory or silently lost events.
    """

    def __init__(self, bus: EventBus, pattern: str) -> None:
        self._bus = bus
        self._pattern = pattern
        self._queue: asyncio.Queue[DataEvent] = asyncio.Queue(STREAM_BUFFER)
        self._overflowed = False
        self._subscription: Subscription | None = None

    async def _forward(self, event: DataEvent) -> None:
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self._overflowed = True

    async def open(self) -> None:
        """Subscribe; returns once the subscription is live (bad pattern: ValueError).

        If the subscription does not go live (RabbitMQ: setup failed or timed out) or
        ``open`` is cancelled meanwhile, it is unsubscribed before the error propagates:
        a failed open leaves nothing registered in the bus.
        """
        self._subscription = self._bus.subscribe(self._pattern, self._forward)
        try:
            await self._subscription
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Unsubscribe (idempotent)."""
        subscription, self._subscription = self._subscription, None
        if subscription is not None:
            self._bus.unsubscribe(subscription)

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def next(self, stop: asyncio.Event, timeout_s: float) -> DataEvent | None:
        """The next event; ``None`` if ``timeout_s`` passed or ``stop`` is set first."""
        if self._overflowed:
            raise StreamOverflowError(
                f"stream for {self._pattern!r} fell {STREAM_BUFFER} events behind"
            )
        if not self._queue.empty():
            return self._queue.get_nowait()
        getting = asyncio.ensure_future(self._queue.get())
        stopping = asyncio.ensure_future(stop.wait())
        try:
            done, _ = await asyncio.wait(
                {getting, stopping}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            stopping.cancel()
            if not getting.done():
                getting.cancel()
        if getting in done:
            return getting.result()
        return None


@inject
async def open_event_stream(
    pattern: str, *, bus: EventBus = Provide[Container.event_bus]
) -> EventStream:
    """An ``EventStream`` of the events matching ``pattern``; use it with ``async with``."""
    return EventStream(bus, pattern)
