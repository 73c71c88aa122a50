"""Where the relay publishes events (D8): the event bus and Redis pub/sub.

A sink's ``publish`` returns only once the sink has acknowledged every event of the batch
(the bus: publisher confirm, or the in-process enqueue; Redis: ``PUBLISH`` answered), in
order; it raises otherwise, and the relay keeps its checkpoint and tries again.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import pydantic_core
import redis.asyncio as aioredis

from app.entities.records import StoredEvent
from app.events import DataEvent, EventBus

__all__ = ["BusSink", "RedisPubSubSink", "Sink", "data_event", "redis_channel"]

SOURCE = "entities"


class Sink(Protocol):
    """A destination of the relay; ``name`` names its checkpoint and its relay lock."""

    name: str

    async def publish(self, events: Sequence[StoredEvent]) -> None:
        """Send ``events`` in order; return once all are acknowledged, raise otherwise."""


def data_event(event: StoredEvent) -> DataEvent:
    """The bus form of a stored event: ``id`` is the event id (the consumers' dedupe key, the
    same on a redelivery), ``type`` the event type, the D8 object as payload."""
    return DataEvent(
        type=event.event_type,
        resource=event.entity_type,
        key=str(event.entity_id),
        payload=event.as_json(),
        source=SOURCE,
        timestamp=event.created_at,
        version=event.entity_version,
        id=event.event_id,
    )


def redis_channel(event_type: str) -> str:
    return f"events:{event_type}"


class BusSink:
    """The configured ``EventBus`` (in-process or RabbitMQ)."""

    def __init__(self, bus: EventBus, name: str = "bus") -> None:
        self.name = name
        self._bus = bus

    async def publish(self, events: Sequence[StoredEvent]) -> None:
        # One at a time: each publish returns after the broker's confirm, so the order on
        # the exchange is the order of the positions.
        for event in events:
            await self._bus.publish(data_event(event))


class RedisPubSubSink:
    """Redis pub/sub, channel ``events:{event_type}``, the D8 JSON as message.

    Fire-and-forget for subscribers: one that was away catches up by listing events after
    the last position it saw.
    """

    def __init__(self, redis: aioredis.Redis, name: str = "redis") -> None:
        self.name = name
        self._redis = redis

    async def publish(self, events: Sequence[StoredEvent]) -> None:
        # One pipeline (no MULTI): one round trip for the batch, replies in order.
        async with self._redis.pipeline(transaction=False) as pipe:
            for event in events:
                pipe.publish(
                    redis_channel(event.event_type), pydantic_core.to_json(event.as_json())
                )
            await pipe.execute()
