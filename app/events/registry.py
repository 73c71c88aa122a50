"""Bookkeeping both buses share: their subscriptions, unsubscribe lookup, routing, drain."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Final, Generic, TypeVar

from app.errors import EventArgumentError, EventArgumentTypeError
from app.events.dispatch import Dispatcher
from app.events.subscription import Handler, Subscription

__all__ = ["SubscriptionRegistry"]

T = TypeVar("T")
_ROUTE_CACHE_SIZE: Final = 10_000
BrokerIdle = Callable[[], Awaitable[bool]]


class SubscriptionRegistry(Generic[T]):
    """The active subscriptions of one bus, each with its dispatcher."""

    def __init__(self) -> None:
        self._entries: dict[Subscription, Dispatcher[T]] = {}
        self.routes: dict[str, tuple[Dispatcher[T], ...]] = {}  # cache: type -> dispatchers
        self._error: BaseException | None = None
        self._error_signal: asyncio.Future[None] | None = None

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, subscription: Subscription, dispatcher: Dispatcher[T]) -> None:
        self._entries[subscription] = dispatcher
        self.routes.clear()

    def remove(self, subscription: Subscription) -> Dispatcher[T] | None:
        dispatcher = self._entries.pop(subscription, None)
        if dispatcher is not None:
            self.routes.clear()
        return dispatcher

    def dispatchers(self) -> list[Dispatcher[T]]:
        return list(self._entries.values())

    def find(
        self, pattern_or_handle: str | Subscription, handler: Handler | None
    ) -> list[Subscription]:
        """The active subscriptions ``unsubscribe`` means.

        A handle means itself (``handler`` must then be ``None`` or its handler); a pattern
        means every subscription of exactly that one pattern with an equal ``handler``.
        """
        if isinstance(pattern_or_handle, Subscription):
            if handler is not None and handler != pattern_or_handle.handler:
                raise EventArgumentError(
                    "unsubscribe(handle, handler): handler must be None or the handle's own "
                    f"handler, got {handler!r}"
                )
            return [pattern_or_handle] if pattern_or_handle in self._entries else []
        if not isinstance(pattern_or_handle, str):
            raise EventArgumentTypeError(
                "unsubscribe expects a pattern (str) and a handler, or a subscription handle; "
                f"got {type(pattern_or_handle).__name__}"
            )
        if handler is None:
            raise EventArgumentTypeError(
                f"unsubscribe({pattern_or_handle!r}) needs the handler that was subscribed"
            )
        return [
            sub
            for sub in self._entries
            if sub.patterns == (pattern_or_handle,) and sub.handler == handler
        ]

    def route(self, event_type: str) -> tuple[Dispatcher[T], ...]:
        """The dispatchers of the subscriptions without a group that match ``event_type``
        (cached per type). A grouped one gets its events through its group: in-process
        from ``groups``, with RabbitMQ from the group's queue."""
        routes = self.routes.get(event_type)
        if routes is None:
            routes = tuple(
                dispatcher
                for sub, dispatcher in self._entries.items()
                if sub.group is None and sub.matcher(event_type)
            )
            if len(self.routes) >= _ROUTE_CACHE_SIZE:
                self.routes.clear()
            self.routes[event_type] = routes
        return routes

    # -- handler errors for drain(fail_fast=True) --------------------------------------

    def record_error(self, error: BaseException) -> None:
        if self._error is None:
            self._error = error
            if self._error_signal is not None and not self._error_signal.done():
                self._error_signal.set_result(None)

    def _take_error(self) -> BaseException | None:
        error, self._error = self._error, None
        self._error_signal = None
        return error

    # -- drain -------------------------------------------------------------------------

    async def drain(
        self,
        timeout: float | None,  # noqa: ASYNC109 - the contract's drain(timeout)
        *,
        fail_fast: bool,
        broker_idle: BrokerIdle | None = None,
    ) -> None:
        """Wait until every dispatcher (and, if given, the broker) is idle.

        ``fail_fast`` re-raises the first handler error recorded since the last drain.
        A timeout raises ``TimeoutError`` saying how much was still pending.
        """
        if timeout is not None and not timeout >= 0:
            raise EventArgumentError(f"timeout must be >= 0 or None, got {timeout!r}")
        try:
            async with asyncio.timeout(timeout):
                await self._wait_idle(fail_fast, broker_idle)
        except TimeoutError:
            pending = sum(dispatcher.pending for dispatcher in self._entries.values())
            raise TimeoutError(
                f"drain did not finish within timeout={timeout}s: {pending} deliveries "
                "still pending in this process"
            ) from None
        finally:
            error = self._take_error()
        if fail_fast and error is not None:
            raise error

    async def _wait_idle(self, fail_fast: bool, broker_idle: BrokerIdle | None) -> None:
        loop = asyncio.get_running_loop()
        stable = 0
        while True:
            if fail_fast and self._error is not None:
                return
            busy = [d for d in self._entries.values() if d.pending]
            if busy:
                stable = 0
                waiters: set[asyncio.Future[Any]] = {loop.create_task(busy[0].idle.wait())}
                if fail_fast:
                    if self._error_signal is None:
                        self._error_signal = loop.create_future()
                    waiters.add(self._error_signal)
                try:
                    await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for waiter in waiters:
                        if waiter is not self._error_signal:
                            waiter.cancel()
                continue
            if broker_idle is None:
                return
            # The broker's counts lag a delivery on its way to us: require two idle looks.
            if await broker_idle():
                stable += 1
                if stable >= 2:
                    return
            else:
                stable = 0
            await asyncio.sleep(0.01)
