"""Building event buses for the tests: both kinds behind one factory, cleaned up after."""

from __future__ import annotations

from typing import Any, Literal

import aio_pika
from aio_pika.abc import AbstractRobustConnection

from app.events import DataEvent, InProcessEventBus, RabbitMQEventBus
from tests.services import delete_bus_topology

__all__ = ["BusFactory", "BusKind", "Recorder", "event"]

BusKind = Literal["inprocess", "rabbitmq"]

# Short defaults so retries and timeouts stay fast in tests.
TEST_DEFAULTS: dict[str, Any] = {"retry_backoff_s": 0.01, "handler_timeout_s": 5.0}


def event(type_: str = "user.created", **payload: Any) -> DataEvent:
    """A small event of ``type_`` with ``payload``."""
    return DataEvent(type_, "user", "42", payload, "tests")


class Recorder:
    """An async handler that records the events it got."""

    def __init__(self) -> None:
        self.events: list[DataEvent] = []

    async def __call__(self, received: DataEvent) -> None:
        self.events.append(received)

    @property
    def types(self) -> list[str]:
        return [received.type for received in self.events]


class BusFactory:
    """Makes started buses of one kind (RabbitMQ: one connection per bus, on an exchange
    of the test's own); ``aclose`` closes them and deletes every exchange and queue."""

    def __init__(self, kind: BusKind, *, url: str | None, exchange: str) -> None:
        self.kind = kind
        self.url = url
        self.exchange = exchange
        self.buses: list[InProcessEventBus | RabbitMQEventBus] = []
        self.connections: list[AbstractRobustConnection] = []

    async def connect(self, url: str | None = None, **kwargs: Any) -> AbstractRobustConnection:
        target = url or self.url
        assert target is not None
        connection: AbstractRobustConnection = await aio_pika.connect_robust(target, **kwargs)
        self.connections.append(connection)
        return connection

    async def make(
        self,
        *,
        start: bool = True,
        connection: AbstractRobustConnection | None = None,
        **kwargs: Any,
    ) -> Any:
        options = {**TEST_DEFAULTS, **kwargs}
        bus: InProcessEventBus | RabbitMQEventBus
        if self.kind == "inprocess":
            bus = InProcessEventBus(**options)
        else:
            bus = RabbitMQEventBus(
                connection or await self.connect(), exchange=self.exchange, **options
            )
        self.buses.append(bus)
        if start:
            await bus.start()
        return bus

    async def dead_letter_ids(self, bus: Any) -> list[str]:
        """Ids of the dead-lettered events (RabbitMQ: read from the dead-letter queue)."""
        if isinstance(bus, InProcessEventBus):
            return [str(letter.event.id) for letter in bus.dead_letters if letter.event]
        return [message.message_id or "" for message in await self.dead_letter_messages()]

    async def dead_letter_messages(self) -> list[aio_pika.abc.AbstractIncomingMessage]:
        connection = await self.connect()
        channel = await connection.channel()
        queue = await channel.declare_queue(f"{self.exchange}.dead-letter", passive=True)
        messages = []
        while (message := await queue.get(no_ack=True, fail=False)) is not None:
            messages.append(message)
        await channel.close()
        return messages

    async def aclose(self) -> None:
        for bus in self.buses:
            await bus.close(timeout=2.0)
        if self.kind == "rabbitmq":
            await self._delete_topology()
        for connection in self.connections:
            await connection.close()

    async def _delete_topology(self) -> None:
        assert self.url is not None
        queues: set[str] = set()
        for bus in self.buses:
            if isinstance(bus, RabbitMQEventBus):
                queues |= bus.queue_names
        await delete_bus_topology(self.url, self.exchange, queues)
