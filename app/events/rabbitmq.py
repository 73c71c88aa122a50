"""``RabbitMQEventBus``: the bus across replicas, on aio-pika's robust connection.

Topology (names from ``exchange``, default ``datalayer.events``):

- one durable topic exchange ``<exchange>``; events are published persistent, with
  publisher confirms, ``mandatory`` (a return counts as unrouted), routing key ``type``;
- a dead-letter fanout exchange and durable queue, both ``<exchange>.dead-letter``;
- per subscription a channel and a queue (see ``rabbitmq_consumer``).

Deliveries run through the shared ``Dispatcher``: ack after the handler succeeded,
retries in this process with backoff, then ``reject`` to the dead-letter queue. A run
cancelled by ``close`` is never acked, so the broker redelivers it; so is a run cut off
by a lost connection (aiormq cancels the consumer tasks of a closed channel). Attempts
are counted per delivery: a message redelivered after a crash starts again at attempt 1.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence

import aio_pika
import aiormq
import structlog
from aio_pika.abc import (
    AbstractIncomingMessage,
    AbstractRobustChannel,
    AbstractRobustConnection,
    AbstractRobustExchange,
)

from app.errors import BusClosedError, EventArgumentError, NotStartedError, PublishError
from app.events.codec import CONTENT_TYPE, DEFAULT_MAX_EVENT_BYTES, encode
from app.events.deadlines import Deadlines
from app.events.model import DataEvent
from app.events.rabbitmq_consumer import BROKER_ERRORS, RabbitMQConsumer, close_channel, queue_name
from app.events.registry import SubscriptionRegistry
from app.events.subscription import (
    BusStats,
    Handler,
    Subscription,
    as_patterns,
    positive_seconds,
)

__all__ = ["RabbitMQEventBus"]

log = structlog.get_logger(__name__)


class RabbitMQEventBus:
    """Events over a RabbitMQ topic exchange; see the module docstring and docs/contracts/events.md.

    ``start()`` opens the publisher channel and declares the exchanges; subscriptions
    made before it become live during it. ``close()`` drains and closes this bus's
    channels but not ``connection``, which belongs to the caller.

    ``publish_timeout_s`` bounds every broker round trip the bus waits for: a publish
    confirm, ``ping``, and a subscription's setup (awaiting its handle then raises
    ``PublishError``). A subscription still being set up when ``unsubscribe``/``close``
    gives up on it is cancelled and never consumes.
    """

    def __init__(
        self,
        connection: AbstractRobustConnection,
        *,
        exchange: str = "datalayer.events",
        publish_timeout_s: float = 5.0,
        handler_timeout_s: float = 30.0,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
        retry_backoff_s: float = 0.1,
        instance_id: str | None = None,
    ) -> None:
        if not isinstance(exchange, str) or not exchange:
            raise EventArgumentError(f"exchange must be a non-empty str, got {exchange!r}")
        if len(exchange.encode("utf-8")) > 200:
            raise EventArgumentError(
                f"exchange name must be at most 200 UTF-8 bytes, got {exchange!r}"
            )
        if type(max_event_bytes) is not int or max_event_bytes < 1:
            raise EventArgumentError(
                f"max_event_bytes must be an int >= 1, got {max_event_bytes!r}"
            )
        if instance_id is not None and (not isinstance(instance_id, str) or not instance_id):
            raise EventArgumentError(
                f"instance_id must be a non-empty str or None, got {instance_id!r}"
            )
        self._connection = connection
        self.exchange_name = exchange
        self.dead_letter_name = f"{exchange}.dead-letter"
        self._publish_timeout_s = positive_seconds("publish_timeout_s", publish_timeout_s)
        self._handler_timeout_s = positive_seconds("handler_timeout_s", handler_timeout_s)
        self._retry_backoff_s = positive_seconds("retry_backoff_s", retry_backoff_s)
        self._max_event_bytes = max_event_bytes
        self.instance_id = instance_id or uuid.uuid4().hex[:12]
        self.stats = BusStats()
        self._registry: SubscriptionRegistry[AbstractIncomingMessage] = SubscriptionRegistry()
        self._consumers: dict[Subscription, RabbitMQConsumer] = {}
        self._channel: AbstractRobustChannel | None = None
        self._exchange: AbstractRobustExchange | None = None
        self._started = False
        self._closed = False
        self._closing: asyncio.Task[None] | None = None
        self._teardowns: set[asyncio.Task[None]] = set()
        self._queue_names: set[str] = set()
        self._deadlines = Deadlines()  # publish_timeout_s, one timer for all publishes

    @property
    def queue_names(self) -> frozenset[str]:
        """Every queue this bus declared (grouped ones outlive it), dead letters included."""
        return frozenset(self._queue_names)

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("started" if self._started else "new")
        return (
            f"<RabbitMQEventBus {self.exchange_name!r} instance={self.instance_id} {state} "
            f"subscriptions={len(self._registry)}>"
        )

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Open the publisher channel, declare the exchanges and the dead-letter queue,
        and make every subscription made so far live. Idempotent."""
        if self._closed:
            raise BusClosedError("RabbitMQEventBus.start() after close(); make a new bus")
        if self._started:
            return
        channel = await self._connection.channel(publisher_confirms=True, on_return_raises=False)
        try:
            self._exchange = await channel.declare_exchange(
                self.exchange_name, aio_pika.ExchangeType.TOPIC, durable=True
            )
            dead_exchange = await channel.declare_exchange(
                self.dead_letter_name, aio_pika.ExchangeType.FANOUT, durable=True
            )
            dead_queue = await channel.declare_queue(self.dead_letter_name, durable=True)
            self._queue_names.add(self.dead_letter_name)
            await dead_queue.bind(dead_exchange)
        except BaseException:
            await channel.close()
            raise
        self._channel = channel
        self._started = True
        pending = [sub for sub, consumer in self._consumers.items() if not consumer.setup_task]
        for subscription in pending:
            self._begin_setup(self._consumers[subscription])
        for subscription in pending:
            await subscription  # raises the first subscription's setup error
        log.info(
            "events.bus_started",
            bus="rabbitmq",
            exchange=self.exchange_name,
            instance_id=self.instance_id,
            subscriptions=len(self._consumers),
        )

    async def close(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Refuse publishes, stop consuming, wait for runs in flight up to ``timeout``
        (then cancel them: unacked, so redelivered), close this bus's channels.
        Idempotent; leaves the connection open."""
        if self._closing is None:
            self._closed = True
            self._closing = asyncio.get_running_loop().create_task(self._close(timeout))
        await asyncio.shield(self._closing)

    async def _close(self, timeout_s: float) -> None:
        consumers = list(self._consumers.values())
        self._consumers.clear()
        for consumer in consumers:
            subscription = consumer.subscription
            subscription.active = False
            self._registry.remove(subscription)
            consumer.dispatcher.stop()
            if consumer.setup_task is None:  # made before start(): wake whoever awaits it
                subscription.set_failed(
                    BusClosedError(f"{subscription.name}: the bus was closed before start()")
                )
        results = await asyncio.gather(
            *(consumer.teardown(timeout_s, self._publish_timeout_s) for consumer in consumers),
            *self._teardowns,
            return_exceptions=True,
        )
        if self._channel is not None:
            await close_channel(self._channel, self._publish_timeout_s)
        self._deadlines.close()
        log.info(
            "events.bus_closed",
            bus="rabbitmq",
            exchange=self.exchange_name,
            instance_id=self.instance_id,
            errors=[repr(result) for result in results if isinstance(result, BaseException)],
        )

    async def ping(self) -> None:
        """A round trip to the broker (passive declare of the exchange) and a check that
        every live subscription has its consumer registered on its channel, within
        ``publish_timeout_s``; raises ``PublishError`` if either fails.

        The consumer check catches the known case of a consumer not restored after a
        reconnect (aio-pika#231, #588), which would otherwise look healthy.
        """
        channel = self._publisher_channel("ping()")
        try:
            async with asyncio.timeout(self._publish_timeout_s):
                underlay = await channel.get_underlay_channel()
                await underlay.exchange_declare(self.exchange_name, passive=True)
                missing = await self._missing_consumers()
        except TimeoutError as exc:
            raise PublishError(
                f"RabbitMQ did not answer a ping within publish_timeout_s={self._publish_timeout_s}"
            ) from exc
        except BROKER_ERRORS as exc:
            raise PublishError(f"RabbitMQ ping failed: {type(exc).__name__}: {exc}") from exc
        if missing:
            raise PublishError(
                f"RabbitMQ subscriptions are not consuming (no consumer on their channel): "
                f"{missing}; restart the service if this persists past the reconnect interval"
            )

    async def _missing_consumers(self) -> list[str]:
        return [
            consumer.subscription.name
            for consumer in list(self._consumers.values())
            if not await consumer.is_consuming()
        ]

    # -- subscriptions -----------------------------------------------------------------

    def subscribe(
        self,
        pattern: str | Sequence[str],
        handler: Handler,
        *,
        group: str | None = None,
        concurrency: int = 1,
        max_attempts: int = 3,
    ) -> Subscription:
        """Subscribe ``handler``; ``await`` the handle to wait until its queue consumes."""
        if self._closed:
            raise BusClosedError(f"subscribe({pattern!r}) on a closed RabbitMQEventBus")
        subscription = Subscription(
            as_patterns(pattern),
            handler,
            group=group,
            concurrency=concurrency,
            max_attempts=max_attempts,
        )
        consumer = RabbitMQConsumer(
            subscription,
            queue=queue_name(self.exchange_name, self.instance_id, subscription),
            stats=self.stats,
            handler_timeout_s=self._handler_timeout_s,
            retry_backoff_s=self._retry_backoff_s,
            on_error=self._registry.record_error,
            on_declared=self._queue_names.add,
        )
        self._registry.add(subscription, consumer.dispatcher)
        self._consumers[subscription] = consumer
        if self._started:
            self._begin_setup(consumer)
        return subscription

    def subscribe_all(self, handler: Handler) -> Subscription:
        """``subscribe("#", handler)``."""
        return self.subscribe("#", handler)

    def unsubscribe(
        self, pattern_or_handle: str | Subscription, handler: Handler | None = None
    ) -> bool:
        """Stop the subscription(s): no new run starts, runs in flight complete; the
        consumer is cancelled and the channel closed in the background."""
        found = self._registry.find(pattern_or_handle, handler)
        for subscription in found:
            subscription.active = False
            self._registry.remove(subscription)
            consumer = self._consumers.pop(subscription)
            consumer.dispatcher.stop()
            if consumer.setup_task is None:  # never started: nothing at the broker
                subscription.set_failed(
                    BusClosedError(f"{subscription.name} was unsubscribed before it went live")
                )
                continue
            task = asyncio.get_running_loop().create_task(
                consumer.teardown(self._handler_timeout_s, self._publish_timeout_s)
            )
            self._teardowns.add(task)
            task.add_done_callback(self._teardowns.discard)
        return bool(found)

    def _begin_setup(self, consumer: RabbitMQConsumer) -> None:
        consumer.begin_setup(
            self._connection, self.exchange_name, self.dead_letter_name, self._publish_timeout_s
        )

    # -- publishing --------------------------------------------------------------------

    def _publisher_channel(self, what: str) -> AbstractRobustChannel:
        if self._closed:
            raise BusClosedError(f"{what} on a closed RabbitMQEventBus; nothing was sent")
        if self._channel is None:
            raise NotStartedError(f"{what} before RabbitMQEventBus.start(); call start() first")
        return self._channel

    async def publish(self, event: DataEvent) -> None:
        """Encode ``event`` and publish it; returns after the broker's confirm.

        Raises ``ValueError``/``EventSerializationError``/``EventTooLargeError`` for a bad
        event, ``PublishError`` if the broker does not confirm within
        ``publish_timeout_s`` (also when it is unreachable), ``BusClosedError`` after close.
        """
        if self._exchange is None or self._closed:
            self._publisher_channel(f"publish({event.type!r})")  # raises the state error
        body = encode(event, self._max_event_bytes).body
        exchange = self._exchange
        assert exchange is not None
        message = aio_pika.Message(
            body,
            content_type=CONTENT_TYPE,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=str(event.id),
            type=event.type,
            timestamp=event.timestamp,
        )
        task: asyncio.Task[object] | None = asyncio.current_task()
        assert task is not None
        deadline = self._deadlines.watch(task)
        self._deadlines.start(deadline, self._publish_timeout_s)
        try:
            result = await exchange.publish(message, routing_key=event.type, mandatory=True)
        except asyncio.CancelledError as exc:
            if not deadline.withdraw():
                raise
            raise PublishError(
                f"RabbitMQ did not confirm event {event.type!r} ({event.id}) within "
                f"publish_timeout_s={self._publish_timeout_s}; it may or may not be delivered"
            ) from exc
        except BROKER_ERRORS as exc:
            deadline.withdraw()
            raise PublishError(
                f"publishing event {event.type!r} ({event.id}) to RabbitMQ failed: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        finally:
            self._deadlines.unwatch(deadline)
        if deadline.withdraw():  # confirmed just as the deadline passed
            raise PublishError(
                f"RabbitMQ did not confirm event {event.type!r} ({event.id}) within "
                f"publish_timeout_s={self._publish_timeout_s}; it may or may not be delivered"
            )
        self.stats.published += 1
        if not isinstance(result, aiormq.spec.Basic.Ack):
            self.stats.unrouted += 1

    async def drain(
        self,
        timeout: float | None = None,  # noqa: ASYNC109 - the contract's drain(timeout)
        *,
        fail_fast: bool = False,
    ) -> None:
        """Wait until this bus's queues are empty at the broker and no run is in flight."""
        await self._registry.drain(timeout, fail_fast=fail_fast, broker_idle=self._broker_idle)

    async def _broker_idle(self) -> bool:
        channel = self._publisher_channel("drain()")
        underlay = await channel.get_underlay_channel()
        for consumer in list(self._consumers.values()):
            if consumer.queue is None:
                continue
            declared = await underlay.queue_declare(consumer.queue_name, passive=True)
            if declared.message_count:
                return False
        return True
