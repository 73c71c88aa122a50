"""Helpers of the entity tests: waiting for a condition, recording sinks."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence

from app.entities import StoredEvent

__all__ = ["FlakySink", "RecordingSink", "SlowSink", "eventually"]


async def eventually(
    condition: Callable[[], Awaitable[bool]] | Callable[[], bool],
    *,
    timeout_s: float = 10.0,
    what: str = "the condition",
) -> None:
    """Wait until ``condition()`` holds, checking every 10 ms; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = condition()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not hold within {timeout_s} s")
        await asyncio.sleep(0.01)


class RecordingSink:
    """A sink that records what it was given (acknowledges at once)."""

    def __init__(self, name: str = "recording") -> None:
        self.name = name
        self.events: list[StoredEvent] = []

    async def publish(self, events: Sequence[StoredEvent]) -> None:
        self.events.extend(events)

    @property
    def positions(self) -> list[int]:
        return [e.global_position for e in self.events]


class FlakySink(RecordingSink):
    """Fails every publish while ``down`` (a broker that is away), records once it is up."""

    def __init__(self, name: str = "flaky") -> None:
        super().__init__(name)
        self.down = True
        self.attempts = 0

    async def publish(self, events: Sequence[StoredEvent]) -> None:
        self.attempts += 1
        if self.down:
            raise ConnectionError("broker down")
        await super().publish(events)


class SlowSink(RecordingSink):
    """Acknowledges each event after ``delay_s`` (``None``: never); ``started`` is set once
    a batch is under way."""

    def __init__(self, name: str = "slow", delay_s: float | None = 0.005) -> None:
        super().__init__(name)
        self.delay_s = delay_s
        self.started = asyncio.Event()

    async def publish(self, events: Sequence[StoredEvent]) -> None:
        self.started.set()
        for event in events:
            if self.delay_s is None:
                await asyncio.Event().wait()
            await asyncio.sleep(self.delay_s or 0)
            self.events.append(event)
