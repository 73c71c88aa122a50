"""``DataUnitStream``: every ``set`` is delivered to each subscriber's bounded queue.

A subscriber that lets its queue fill up is not allowed to grow memory or to slow the
producer: on the value that finds its queue full it is detached, and once it has read what
its queue still holds, its next ``get()`` raises
:class:`~app.data.errors.DataUnitOverflowError` saying how many values it missed. After
``shutdown()``, a subscriber's ``get()`` raises ``DataUnitClosedError`` once drained.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, Final

import structlog

from app.data.errors import DataUnitClosedError, DataUnitError, DataUnitOverflowError
from app.data.units.base import DataUnitBase
from app.data.units.config import DataUnitType

__all__ = ["DataUnitStream", "StreamSubscription"]

log = structlog.get_logger(__name__)

_END: Final = object()  # queued to wake a reader waiting on an empty, ended queue


class StreamSubscription(asyncio.Queue[Any]):
    """A subscriber's queue (an ``asyncio.Queue``) that ends with an error, not silence."""

    def __init__(self, maxsize: int) -> None:
        super().__init__(maxsize)
        self._end: DataUnitError | None = None
        self._dropped = 0

    @property
    def overflowed(self) -> bool:
        """True once a value was dropped because this queue was full."""
        return self._dropped > 0

    def _offer(self, value: Any) -> bool:
        """Queue ``value``; on a full queue detach (False) and count what is lost."""
        if self._end is not None:
            return False
        try:
            self.put_nowait(value)
        except asyncio.QueueFull:
            self._dropped += 1
            self._end = DataUnitOverflowError(self.maxsize, self._dropped)
            return False
        return True

    def _close(self, reason: DataUnitError) -> None:
        if self._end is None:
            self._end = reason
            self._wake_reader()

    def _wake_reader(self) -> None:
        # A reader waits only on an empty queue, so the marker always fits when one waits;
        # on a full queue nobody waits, and the reader meets the end once it has drained.
        with contextlib.suppress(asyncio.QueueFull):
            super().put_nowait(_END)

    async def get(self) -> Any:
        """The next value; raises the end reason (overflow or shutdown) once drained."""
        if self.empty() and self._end is not None:
            raise self._end
        value = await super().get()
        return self._checked(value)

    def get_nowait(self) -> Any:
        """The next value without waiting; the end reason once drained."""
        if self.empty() and self._end is not None:
            raise self._end
        return self._checked(super().get_nowait())

    def _checked(self, value: Any) -> Any:
        if value is _END:
            assert self._end is not None  # the marker is queued only after _end is set
            raise self._end
        return value


class DataUnitStream(DataUnitBase):
    """The latest value, and a fan-out of every new one to subscribers.

    Each subscriber's queue holds at most ``config.cache_size`` values.
    """

    default_type = DataUnitType.STREAM

    async def _initialize(self) -> None:
        self._value: Any = self.config.initial_value
        self._subscribers: list[StreamSubscription] = []

    async def _get(self) -> Any:
        return self._value

    async def _set(self, data: Any) -> None:
        self._value = data
        kept: list[StreamSubscription] = []
        for queue in self._subscribers:
            if queue._offer(data):
                kept.append(queue)
            else:
                log.warning("data_unit.stream_overflow", unit=self.name, maxsize=queue.maxsize)
        self._subscribers = kept

    async def _clear(self) -> None:
        self._value = self.config.initial_value

    async def _shutdown(self) -> None:
        reason = DataUnitClosedError(f"stream {self.name!r} was shut down")
        for queue in getattr(self, "_subscribers", ()):
            queue._close(reason)
        self._subscribers = []

    async def subscribe(self) -> StreamSubscription:
        """A new queue that receives every value set from now on."""
        await self._ready()
        queue = StreamSubscription(self.config.cache_size)
        async with self._lock:
            self._subscribers.append(queue)
        return queue

    async def unsubscribe(self, queue: asyncio.Queue[Any]) -> None:
        """Stop delivering to ``queue`` (idempotent; an unknown queue is ignored)."""
        await self._ready()
        async with self._lock:
            self._subscribers = [sub for sub in self._subscribers if sub is not queue]

    @property
    def subscriber_count(self) -> int:
        """How many subscribers receive values."""
        return len(getattr(self, "_subscribers", ()))
