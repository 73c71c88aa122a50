"""The events layer: in-process or RabbitMQ bus, chosen by a ``Selector`` on ``EVENT_BUS``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TypeVar

from aio_pika.abc import AbstractRobustConnection
from dependency_injector import containers, providers

from app.events import InProcessEventBus, RabbitMQEventBus
from containers.backends import TIMEOUT_MARGIN_S
from containers.declarations import Managed, ping_method
from settings import EventBusKind, EventsSettings, RabbitMQSettings, Settings

__all__ = ["EventsContainer", "inprocess_bus", "rabbitmq_bus"]


def _bus_address(settings: Settings) -> str:
    if settings.event_bus is EventBusKind.RABBITMQ:
        return settings.rabbitmq.address()
    return "in-process"


def _bus_stop_timeout(settings: Settings) -> float:
    # The bus drains its handlers for up to EVENTS__CLOSE_TIMEOUT_S, then closes.
    return settings.events.close_timeout_s + TIMEOUT_MARGIN_S


Bus = TypeVar("Bus", InProcessEventBus, RabbitMQEventBus)


@asynccontextmanager
async def _running(bus: Bus, close_timeout_s: float) -> AsyncIterator[Bus]:
    """Start ``bus``; at exit close it, draining handlers in flight up to the timeout."""
    await bus.start()
    try:
        yield bus
    finally:
        await bus.close(close_timeout_s)


async def inprocess_bus(settings: EventsSettings) -> AsyncIterator[InProcessEventBus]:
    """An in-process bus."""
    bus = InProcessEventBus(
        handler_timeout_s=settings.handler_timeout_s,
        max_event_bytes=settings.max_event_bytes,
        retry_backoff_s=settings.retry_backoff_s,
    )
    async with _running(bus, settings.close_timeout_s):
        yield bus


async def rabbitmq_bus(
    connection: AbstractRobustConnection, settings: EventsSettings, broker: RabbitMQSettings
) -> AsyncIterator[RabbitMQEventBus]:
    """A RabbitMQ bus on the shared connection; closed (drained) before the connection closes."""
    bus = RabbitMQEventBus(
        connection,
        exchange=broker.exchange,
        publish_timeout_s=broker.publish_timeout_s,
        handler_timeout_s=settings.handler_timeout_s,
        max_event_bytes=settings.max_event_bytes,
        retry_backoff_s=settings.retry_backoff_s,
    )
    async with _running(bus, settings.close_timeout_s):
        yield bus


class EventsContainer(containers.DeclarativeContainer):
    """``bus`` selects the in-process or the RabbitMQ bus by ``EVENT_BUS``."""

    settings = providers.Dependency(instance_of=Settings)
    rabbitmq: providers.Dependency[AbstractRobustConnection] = providers.Dependency()

    inprocess = providers.Resource(inprocess_bus, settings.provided.events)
    rabbitmq_bus = providers.Resource(
        rabbitmq_bus, rabbitmq, settings.provided.events, settings.provided.rabbitmq
    )
    bus = providers.Selector(
        settings.provided.event_bus,
        inprocess=inprocess,
        rabbitmq=rabbitmq_bus,
    )
    bus_lifecycle = Managed(
        "bus",
        name="events",
        ping=ping_method,
        address=_bus_address,
        stop_timeout_s=_bus_stop_timeout,
    )
