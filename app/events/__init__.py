"""Event buses: ``DataEvent``, the ``EventBus`` protocol and its two implementations.

``InProcessEventBus`` serves one process; ``RabbitMQEventBus`` spans replicas. Both share
one topic matcher (``topics``), one JSON codec (``codec``) and one delivery engine
(``dispatch``), and pass the same contract suite (docs/contracts/events.md, section B).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from app.errors import (
    BusClosedError,
    EventArgumentError,
    EventArgumentTypeError,
    EventBusError,
    EventSerializationError,
    EventTooLargeError,
    HandlerTimeoutError,
    MalformedEventError,
    PublishError,
)
from app.events.inprocess import InProcessEventBus
from app.events.model import DataEvent
from app.events.protocol import EventBus
from app.events.rabbitmq import RabbitMQEventBus
from app.events.subscription import BusStats, DeadLetter, Handler, Subscription
from app.events.topics import TopicMatcher, compile_pattern, topic_matches

if TYPE_CHECKING:  # both buses implement the protocol (checked by mypy)
    _inprocess: type[EventBus] = InProcessEventBus
    _rabbitmq: type[EventBus] = RabbitMQEventBus

__all__ = [
    "BusClosedError",
    "BusStats",
    "DataEvent",
    "DeadLetter",
    "EventArgumentError",
    "EventArgumentTypeError",
    "EventBus",
    "EventBusError",
    "EventSerializationError",
    "EventTooLargeError",
    "Handler",
    "HandlerTimeoutError",
    "InProcessEventBus",
    "MalformedEventError",
    "PublishError",
    "RabbitMQEventBus",
    "Subscription",
    "TopicMatcher",
    "compile_pattern",
    "topic_matches",
]
