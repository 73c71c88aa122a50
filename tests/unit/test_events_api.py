"""The public surface of ``app.events``: exports, protocol conformance, construction checks."""

from __future__ import annotations

import asyncio

import pytest

import app.events
from app.events import DataEvent, EventBus, InProcessEventBus, RabbitMQEventBus
from app.events.subscription import Subscription


def test_all_is_complete_and_importable() -> None:
    """Every public name of the package is in __all__, and every name in __all__ exists."""
    public = {name for name in vars(app.events) if not name.startswith("_")}
    modules = {"codec", "dispatch", "errors", "inprocess", "model", "protocol", "rabbitmq"}
    modules |= {"rabbitmq_consumer", "deadlines"}
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
