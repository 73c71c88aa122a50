"""The public surface of ``app.events``: exports, protocol conformance, construction checks."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Literal

import pytest

import app.events
from app.events import DataEvent, EventBus, InProcessEventBus, PublishError, RabbitMQEventBus
from app.events.subscription import BusStats, Handler, Subscription, as_patterns
from app.services.events import EventStream


def test_all_is_complete_and_importable() -> None:
    """Every public name of the package is in __all__, and every name in __all__ exists."""
    public = {name for name in vars(app.events) if not name.startswith("_")}
    modules = {"codec", "dispatch", "errors", "inprocess", "model", "protocol", "rabbitmq"}
    modules |= {"rabbitmq_consumer", "deadlines", "groups"}
    modules |= {"registry", "subscription", "topics", "annotations", "TYPE_CHECKING"}
    assert public - modules == set(app.events.__all__)
    assert all(hasattr(app.events, name) for name in app.events.__all__)


def test_in_process_bus_implements_the_protocol() -> None:
    """InProcessEventBus passes the runtime EventBus protocol check."""
    assert isinstance(InProcessEventBus(), EventBus)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"handler_timeout_s": 0}, "handler_timeout_s"),
        ({"retry_backoff_s": float("nan")}, "retry_backoff_s"),
        ({"max_event_bytes": 0}, "max_event_bytes"),
    ],
)
def test_in_process_constructor_validates(kwargs: dict[str, float], message: str) -> None:
    """Bad constructor arguments raise ValueError naming the argument."""
    with pytest.raises(ValueError, match=message):
        InProcessEventBus(**kwargs)  # type: ignore[arg-type]


def test_rabbitmq_constructor_validates_without_connecting() -> None:
    """RabbitMQEventBus checks its arguments at construction, before any I/O."""
    with pytest.raises(ValueError, match="publish_timeout_s"):
        RabbitMQEventBus(None, publish_timeout_s=-1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="exchange"):
        RabbitMQEventBus(None, exchange="")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"concurrency": 0}, "concurrency"),
        ({"max_attempts": True}, "max_attempts"),
        ({"group": ""}, "group"),
    ],
)
def test_subscribe_validates_options(kwargs: dict[str, object], message: str) -> None:
    """subscribe rejects a bad concurrency, max_attempts or group with ValueError."""

    async def handler(event: DataEvent) -> None:
        return None

    with pytest.raises(ValueError, match=message):
        InProcessEventBus().subscribe("a.b", handler, **kwargs)  # type: ignore[arg-type]


def test_original_api_works_without_await_and_outside_a_loop() -> None:
    """subscribe/unsubscribe are plain calls usable before the loop runs, as in the original API."""
    bus = InProcessEventBus()
    got: list[str] = []

    async def handler(event: DataEvent) -> None:
        got.append(event.type)

    handle = bus.subscribe("user.created", handler)
    assert isinstance(handle, Subscription)
    assert handle.live

    async def run() -> None:
        await bus.publish(DataEvent("user.created", "user", "1"))
        await bus.drain(5, fail_fast=True)
        await bus.close()

    asyncio.run(run())
    assert got == ["user.created"]
    assert bus.unsubscribe("user.created", handler) is False  # close removed it


class PendingSetupBus:
    """An EventBus whose subscriptions are registered at once but go live only when the test
    says so, or fail: RabbitMQ's setup without a broker."""

    def __init__(self) -> None:
        self.stats = BusStats()
        self.registered: list[Subscription] = []

    async def start(self) -> None:
        return None

    def subscribe(
        self,
        pattern: str | Sequence[str],
        handler: Handler,
        *,
        group: str | None = None,
        concurrency: int = 1,
        max_attempts: int = 3,
    ) -> Subscription:
        subscription = Subscription(
            as_patterns(pattern),
            handler,
            group=group,
            concurrency=concurrency,
            max_attempts=max_attempts,
        )
        self.registered.append(subscription)
        return subscription

    def subscribe_all(self, handler: Handler) -> Subscription:
        return self.subscribe("#", handler)

    def unsubscribe(
        self, pattern_or_handle: str | Subscription, handler: Handler | None = None
    ) -> bool:
        found = [
            subscription
            for subscription in self.registered
            if subscription is pattern_or_handle
            or (subscription.patterns == (pattern_or_handle,) and subscription.handler == handler)
        ]
        for subscription in found:
            subscription.active = False
            self.registered.remove(subscription)
        return bool(found)

    async def publish(self, event: DataEvent) -> None:
        return None

    async def drain(self, timeout: float | None = None, *, fail_fast: bool = False) -> None:  # noqa: ASYNC109
        return None

    async def close(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        self.registered.clear()

    async def ping(self) -> None:
        return None


@pytest.mark.parametrize("outcome", ["setup_fails", "open_cancelled"])
async def test_a_stream_that_does_not_go_live_leaves_no_subscription_behind(
    outcome: Literal["setup_fails", "open_cancelled"],
) -> None:
    """EventStream.open() that fails or is cancelled unsubscribes what it made, then re-raises."""
    bus = PendingSetupBus()
    assert isinstance(bus, EventBus)
    stream = EventStream(bus, "order.*")
    opening = asyncio.create_task(stream.open())
    await asyncio.sleep(0)
    (pending,) = bus.registered
    expected: type[BaseException]
    if outcome == "setup_fails":
        pending.set_failed(PublishError("RabbitMQ did not set up the subscription in time"))
        expected = PublishError
    else:
        opening.cancel()
        expected = asyncio.CancelledError
    with pytest.raises(expected):
        await opening
    assert bus.registered == []
    assert not pending.active
    stream.close()  # the route's cleanup after a failed open stays harmless


async def test_a_stream_that_goes_live_stays_subscribed_until_closed() -> None:
    """EventStream.open() that succeeds keeps its one subscription until close()."""
    bus = PendingSetupBus()
    stream = EventStream(bus, "order.*")
    opening = asyncio.create_task(stream.open())
    await asyncio.sleep(0)
    (pending,) = bus.registered
    pending.set_live()
    await opening
    assert bus.registered == [pending]
    stream.close()
    assert bus.registered == []
