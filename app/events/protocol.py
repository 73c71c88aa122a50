"""The ``EventBus`` interface both buses implement (docs/contracts/events.md, section B)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from app.events.model import DataEvent
from app.events.subscription import BusStats, Handler, Subscription

__all__ = ["EventBus"]


@runtime_checkable
class EventBus(Protocol):
    """Publish immutable events; subscribe handlers by topic pattern.

    ``subscribe``/``subscribe_all``/``unsubscribe`` are plain calls (the original API calls
    them without ``await``); ``await handle`` waits until a subscription is live.
    """

    stats: BusStats

    async def start(self) -> None:
        """Prepare the bus (RabbitMQ: channels, exchanges, pending subscriptions)."""

    def subscribe(
        self,
        pattern: str | Sequence[str],
        handler: Handler,
        *,
        group: str | None = None,
        concurrency: int = 1,
        max_attempts: int = 3,
    ) -> Subscription:
        """Run ``handler`` for every event whose type matches ``pattern`` (``*``, ``#``);
        several patterns in a sequence make one subscription. Subscriptions with the same
        ``group`` and patterns share their events, each handled once by one of them (B21)."""

    def subscribe_all(self, handler: Handler) -> Subscription:
        """``subscribe("#", handler)``."""

    def unsubscribe(
        self, pattern_or_handle: str | Subscription, handler: Handler | None = None
    ) -> bool:
        """Stop a subscription; ``True`` the first time, ``False`` after."""

    async def publish(self, event: DataEvent) -> None:
        """Encode and send ``event``; never runs handlers inline."""

    async def drain(
        self,
        timeout: float | None = None,  # noqa: ASYNC109 - the contract's drain(timeout)
        *,
        fail_fast: bool = False,
    ) -> None:
        """Wait until every subscription is idle; ``fail_fast`` re-raises a handler error."""

    async def close(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Refuse publishes, wait for runs in flight up to ``timeout``, then cancel them."""

    async def ping(self) -> None:
        """Raise if the bus cannot publish right now."""
