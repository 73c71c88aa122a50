"""One RabbitMQ subscription's broker side: its channel, queue, consumer and settling.

Per subscription one channel (prefetch = ``concurrency``) and one queue bound with its
patterns and dead-lettering to ``<exchange>.dead-letter``: durable and shared for a
``group`` (``<exchange>.<group>.<digest of the sorted patterns>``), exclusive and
auto-delete otherwise (``<exchange>.<instance_id>.<n>``). Each delivery runs through the
shared ``Dispatcher`` in aio-pika's task for it; settling never raises: a failed ack or
reject leaves the message to the broker, which redelivers it.

Setup (channel, declarations, bindings, consume) must finish within the bus's
``publish_timeout_s``. A subscription deactivated by ``unsubscribe``/``close`` while it is
set up never starts consuming: ``teardown`` cancels a setup it stops waiting for, and the
setup checks the subscription is still active right before ``basic.consume``.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from typing import Final

import aio_pika
import aiormq
import structlog
from aio_pika.abc import (
    AbstractIncomingMessage,
    AbstractRobustChannel,
    AbstractRobustConnection,
    AbstractRobustQueue,
)

from app.errors import BusClosedError, EventArgumentError, PublishError
from app.events.codec import decode
from app.events.dispatch import Dispatcher
from app.events.model import DataEvent
from app.events.subscription import BusStats, DeadLetter, Subscription

__all__ = ["BROKER_ERRORS", "RabbitMQConsumer", "close_channel", "queue_name"]

log = structlog.get_logger(__name__)

MAX_NAME_BYTES: Final = 255
BROKER_ERRORS: Final = (aiormq.exceptions.AMQPError, ConnectionError, RuntimeError, OSError)


def queue_name(exchange: str, instance_id: str, subscription: Subscription) -> str:
    """The queue of ``subscription``: private without a group; with one, the queue of its
    group key (B21), named by the group and a digest of its pattern set, so every
    subscription with the same group and patterns (any bus, any process) consumes from
    it and the same group with other patterns has a queue of its own."""
    key = subscription.group_key
    if key is None:
        name = f"{exchange}.{instance_id}.{subscription.id}"
    else:
        group, patterns = key
        digest = hashlib.sha256("\n".join(patterns).encode("utf-8"))
        name = f"{exchange}.{group}.{digest.hexdigest()[:16]}"
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        raise EventArgumentError(
            f"queue name {name!r} would exceed {MAX_NAME_BYTES} bytes; "
            "use a shorter group or exchange name"
        )
    return name


async def close_channel(channel: AbstractRobustChannel, timeout_s: float) -> None:
    """Close ``channel`` within ``timeout_s``; a failure is logged (the broker cleans up)."""
    try:
        async with asyncio.timeout(timeout_s):
            await channel.close()
    except (TimeoutError, *BROKER_ERRORS) as exc:
        log.warning("events.channel_close_failed", error=repr(exc))


class RabbitMQConsumer:
    """The broker side of one subscription; ``setup`` makes it live, ``teardown`` ends it."""

    def __init__(
        self,
        subscription: Subscription,
        *,
        queue: str,
        stats: BusStats,
        handler_timeout_s: float,
        retry_backoff_s: float,
        on_error: Callable[[BaseException], None],
        on_declared: Callable[[str], None],
    ) -> None:
        self.subscription = subscription
        self._on_declared = on_declared
        self.queue_name = queue
        self.dispatcher: Dispatcher[AbstractIncomingMessage] = Dispatcher(
            subscription,
            stats=stats,
            handler_timeout_s=handler_timeout_s,
            retry_backoff_s=retry_backoff_s,
            decode=_decode,
            on_success=_ack,
            on_dead=_reject,
            on_requeue=_requeue,
            on_drop=_leave_unacked,
            on_error=on_error,
        )
        self.channel: AbstractRobustChannel | None = None
        self.queue: AbstractRobustQueue | None = None
        self.consumer_tag: str | None = None
        self.setup_task: asyncio.Task[None] | None = None

    def begin_setup(
        self,
        connection: AbstractRobustConnection,
        exchange: str,
        dead_letter: str,
        timeout_s: float,
    ) -> None:
        """Start ``setup`` in a task (``subscribe`` is a plain call)."""
        self.setup_task = asyncio.get_running_loop().create_task(
            self._setup(connection, exchange, dead_letter, timeout_s),
            name=f"events.setup:{self.subscription.name}",
        )

    async def _setup(
        self,
        connection: AbstractRobustConnection,
        exchange: str,
        dead_letter: str,
        timeout_s: float,
    ) -> None:
        """Declare, bind and consume within ``timeout_s`` (the bus's publish_timeout_s)."""
        subscription = self.subscription
        try:
            try:
                async with asyncio.timeout(timeout_s):
                    await self._declare_and_consume(connection, exchange, dead_letter)
            except TimeoutError as exc:
                raise PublishError(
                    f"RabbitMQ did not set up subscription {subscription.name} (queue "
                    f"{self.queue_name!r}) within publish_timeout_s={timeout_s}; "
                    "check the broker, then subscribe again"
                ) from exc
        except BaseException as exc:
            await self._setup_failed(exc, timeout_s)
            if not isinstance(exc, Exception):
                raise
            return
        subscription.set_live()
        log.debug("events.subscribed", subscription=subscription.name, queue=self.queue_name)

    async def _declare_and_consume(
        self, connection: AbstractRobustConnection, exchange: str, dead_letter: str
    ) -> None:
        subscription = self.subscription
        channel = await connection.channel(publisher_confirms=False)
        self.channel = channel
        await channel.set_qos(prefetch_count=subscription.concurrency)
        topic = await channel.declare_exchange(exchange, aio_pika.ExchangeType.TOPIC, durable=True)
        if not subscription.active:  # unsubscribed or closed meanwhile: declare nothing
            raise self._abandoned()
        grouped = subscription.group is not None
        queue = await channel.declare_queue(
            self.queue_name,
            durable=grouped,
            exclusive=not grouped,
            auto_delete=not grouped,
            arguments={"x-dead-letter-exchange": dead_letter},
        )
        self.queue = queue
        self._on_declared(self.queue_name)
        for pattern in subscription.patterns:
            await queue.bind(topic, routing_key=pattern)
        if not subscription.active:  # unsubscribed or closed meanwhile: never consume
            raise self._abandoned()
        self.consumer_tag = await queue.consume(self.dispatcher.run, no_ack=False)
        if not subscription.active:  # deactivated during basic.consume: closing the channel
            raise self._abandoned()  # (in _setup_failed) cancels the consumer

    def _abandoned(self) -> BusClosedError:
        return BusClosedError(
            f"{self.subscription.name} was unsubscribed, or its bus closed, before it went live"
        )

    async def _setup_failed(self, exc: BaseException, timeout_s: float) -> None:
        """Fail the handle (a deactivated one with ``BusClosedError``), delete a private
        queue already declared (exclusive: nobody else could use or delete it; auto-delete
        never fires for a queue that had no consumer), and close the channel: deliveries
        it may hold go back to the queue."""
        subscription = self.subscription
        if subscription.active:
            subscription.set_failed(exc)
            log.error(
                "events.subscribe_failed",
                subscription=subscription.name,
                queue=self.queue_name,
                error=repr(exc),
            )
        else:  # unsubscribe/close gave up on it: not a failure of the subscription
            subscription.set_failed(exc if isinstance(exc, BusClosedError) else self._abandoned())
            log.debug(
                "events.subscribe_abandoned",
                subscription=subscription.name,
                queue=self.queue_name,
                error=repr(exc),
            )
        channel, self.channel, self.consumer_tag = self.channel, None, None
        if channel is None:
            return
        if self.queue is not None and subscription.group is None:
            try:
                async with asyncio.timeout(timeout_s):
                    await self.queue.delete(if_unused=False, if_empty=False)
            except (TimeoutError, *BROKER_ERRORS) as delete_error:
                log.warning(
                    "events.queue_delete_failed", queue=self.queue_name, error=repr(delete_error)
                )
        await close_channel(channel, timeout_s)

    async def teardown(self, timeout_s: float, broker_timeout_s: float) -> None:
        """Cancel the consumer, wait for runs in flight up to ``timeout_s`` (then cancel
        them), close the channel: deliveries not acked go back to the queue."""
        self.dispatcher.stop()
        setup = self.setup_task
        if setup is not None and not setup.done():
            await asyncio.wait([setup], timeout=timeout_s)
            if not setup.done():  # gave up waiting: it must not start consuming later
                setup.cancel()
                await asyncio.wait([setup])
        if self.queue is not None and self.consumer_tag is not None:
            try:
                async with asyncio.timeout(broker_timeout_s):
                    await self.queue.cancel(self.consumer_tag)
            except (TimeoutError, *BROKER_ERRORS) as exc:
                log.warning("events.consumer_cancel_failed", queue=self.queue_name, error=repr(exc))
        await self.dispatcher.join(timeout_s)
        if self.channel is not None:
            await close_channel(self.channel, broker_timeout_s)

    async def is_consuming(self) -> bool:
        """False if a live subscription's consumer is missing from its channel."""
        if not self.subscription.live or self.channel is None or self.consumer_tag is None:
            return True
        underlay = await self.channel.get_underlay_channel()
        return not isinstance(underlay, aiormq.Channel) or self.consumer_tag in underlay.consumers


# -- settling deliveries (never raise: a failed ack means the broker redelivers) ------


def _decode(message: AbstractIncomingMessage) -> DataEvent:
    return decode(message.body)


async def _ack(message: AbstractIncomingMessage) -> None:
    try:
        await message.ack()
    except BROKER_ERRORS as exc:
        log.warning("events.ack_failed", message_id=message.message_id, error=repr(exc))


async def _reject(message: AbstractIncomingMessage, letter: DeadLetter) -> None:
    try:
        await message.reject(requeue=False)
    except BROKER_ERRORS as exc:
        log.warning(
            "events.dead_letter_failed",
            message_id=message.message_id,
            reason=letter.reason,
            error=repr(exc),
        )


async def _requeue(message: AbstractIncomingMessage) -> None:
    """An interrupted delivery with attempts left: back to the queue for redelivery."""
    try:
        await message.nack(requeue=True)
    except BROKER_ERRORS as exc:
        log.warning("events.requeue_failed", message_id=message.message_id, error=repr(exc))


def _leave_unacked(message: AbstractIncomingMessage) -> None:
    """Not run here: left unacked, so closing the channel returns it to the queue."""
