"""What ``subscribe`` returns, what a dead letter records, and the bus counters."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable, Generator, Sequence
from dataclasses import dataclass, replace
from typing import Any

from app.errors import EventArgumentError, EventArgumentTypeError
from app.events.model import DataEvent
from app.events.topics import TopicMatcher, pattern_set, validate_pattern

__all__ = [
    "BusStats",
    "DeadLetter",
    "GroupKey",
    "Handler",
    "Subscription",
    "as_patterns",
    "positive_seconds",
]

Handler = Callable[[DataEvent], Awaitable[Any]]
GroupKey = tuple[str, tuple[str, ...]]
"""What names a group's share of events (B21): the group name and the pattern set."""

_ids = itertools.count(1)


@dataclass(slots=True)
class BusStats:
    """Counters of one bus instance (live; ``snapshot()`` for a copy)."""

    published: int = 0  # events accepted by publish (RabbitMQ: confirmed)
    unrouted: int = 0  # published events no subscription (no queue) matched
    delivered: int = 0  # handler runs that succeeded
    failed_attempts: int = 0  # handler runs that raised or timed out
    retried: int = 0  # attempts after the first
    dead_lettered: int = 0  # deliveries given up after max_attempts, or malformed
    dropped: int = 0  # deliveries not run because of unsubscribe/close (RabbitMQ: requeued)

    def snapshot(self) -> BusStats:
        return replace(self)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A delivery given up: ``event`` is ``None`` when the message could not be decoded."""

    subscription: str
    event: DataEvent | None
    error: BaseException
    attempts: int
    reason: str


class Subscription:
    """A handle on one subscription; ``await handle`` waits until it is live.

    In-process a subscription is live at once; with RabbitMQ when its queue is declared,
    bound and consumed. ``await`` raises the setup error if that failed.
    """

    __slots__ = (
        "_error",
        "_ready",
        "active",
        "concurrency",
        "group",
        "handler",
        "id",
        "matcher",
        "max_attempts",
        "patterns",
    )

    def __init__(
        self,
        patterns: tuple[str, ...],
        handler: Handler,
        *,
        group: str | None,
        concurrency: int,
        max_attempts: int,
    ) -> None:
        for pattern in patterns:
            validate_pattern(pattern)
        if not callable(handler):
            raise EventArgumentTypeError(
                f"handler must be an async callable, got {type(handler).__name__}"
            )
        if group is not None and (not isinstance(group, str) or not group):
            raise EventArgumentError(f"group must be a non-empty str or None, got {group!r}")
        _check_positive_int("concurrency", concurrency)
        _check_positive_int("max_attempts", max_attempts)
        self.id = next(_ids)
        self.patterns = patterns
        self.matcher = TopicMatcher(patterns)
        self.handler = handler
        self.group = group
        self.concurrency = concurrency
        self.max_attempts = max_attempts
        self.active = True
        self._ready = asyncio.Event()  # binds to a loop only when awaited
        self._error: BaseException | None = None

    @property
    def name(self) -> str:
        """``patterns->handler`` with the handler's qualified name, for logs and dead letters."""
        handler_name = getattr(self.handler, "__qualname__", type(self.handler).__name__)
        return f"{'|'.join(self.patterns)}->{handler_name}#{self.id}"

    @property
    def group_key(self) -> GroupKey | None:
        """``(group, patterns)`` with the patterns as :func:`pattern_set` spells them; every
        subscription with an equal key shares one stream of events (B21). None: no group."""
        if self.group is None:
            return None
        return (self.group, pattern_set(self.patterns))

    @property
    def live(self) -> bool:
        return self._ready.is_set() and self._error is None and self.active

    def set_live(self) -> None:
        self._ready.set()

    def set_failed(self, error: BaseException) -> None:
        self._error = error
        self.active = False
        self._ready.set()

    def __await__(self) -> Generator[Any, None, Subscription]:
        return self._wait_live().__await__()

    async def _wait_live(self) -> Subscription:
        await self._ready.wait()
        if self._error is not None:
            raise self._error
        return self

    def __repr__(self) -> str:
        state = "live" if self.live else ("inactive" if not self.active else "pending")
        return f"<Subscription {self.name} group={self.group!r} {state}>"


def as_patterns(pattern: str | Sequence[str]) -> tuple[str, ...]:
    """``subscribe``'s pattern argument as a tuple: one pattern, or several in a sequence."""
    if isinstance(pattern, str):
        return (pattern,)
    if not isinstance(pattern, Sequence):
        raise EventArgumentTypeError(
            f"pattern must be a str or a sequence of str, got {type(pattern).__name__}"
        )
    patterns = tuple(pattern)
    if not patterns:
        raise EventArgumentError(
            "pattern must not be an empty sequence; use '#' for every event type"
        )
    return patterns


def positive_seconds(name: str, value: float) -> float:
    """``value`` as a float if it is a finite number > 0; else ``ValueError`` naming ``name``."""
    if not isinstance(value, int | float) or isinstance(value, bool) or not 0 < value < 1e12:
        raise EventArgumentError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def _check_positive_int(name: str, value: object) -> None:
    if type(value) is not int or value < 1:
        raise EventArgumentError(f"{name} must be an int >= 1, got {value!r}")
