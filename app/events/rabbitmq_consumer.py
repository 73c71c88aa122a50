"""One RabbitMQ subscription's broker side: its channel, queue, consumer and settling.

Per subscription one channel (prefetch = ``concurrency``) and one queue bound with its
patterns and dead-lettering to ``<exchange>.dead-letter``: durable and shared for a
``group`` (``<exchange>.<group>.<patterns digest>``), exclusive and auto-delete otherwise
(``<exchange>.<instance_id>.<n>``). Each delivery runs through the shared ``Dispatcher``
in aio-pika's task for it; settling never raises: a failed ack or reject leaves the
message to the broker, which redelivers it.
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

from app.events.codec import decode
from app.events.dispatch import Dispatcher
from app.events.model import DataEvent
from app.events.subscription import BusStats, DeadLetter, Subscription

__all__ = ["BROKER_ERRORS", "RabbitMQConsumer", "close_channel", "queue_name"]

log = structlog.get_logger(__name__)

MAX_NAME_BYTES: Final = 255
BROKER_ERRORS: Final = (aiormq.exceptions.AMQPError, ConnectionError, RuntimeError, OSError)


def queue_name(exchange: str, instance_id: str, subscription: Subscription) -> str:
    """The queue of ``subscription`` (shared by a group, private otherwise)."""
    if subscription.group is None:
        name = f"{exchange}.{instance_id}.{subscription.id}"
    else:
        digest = hashlib.sha256("\n".join(subscription.patterns).encode("utf-8"))
        name = f"{exchange}.{subscription.group}.{digest.hexdigest()[:16]}"
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        raise ValueError(
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
        subscription = self.subscription
        try:
            channel = await connection.channel(publisher_confirms=False)
            self.channel = channel
            await channel.set_qos(prefetch_count=subscription.concurrency)
            topic = await channel.declare_exchange(
                exchange, aio_pika.ExchangeType.TOPIC, durable=True
            )
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
            self.consumer_tag = await queue.consume(self.dispatcher.run, no_ack=False)
        except BaseException as exc:
            subscription.set_failed(exc)
            log.error(  # noqa: TRY400 - the error is in the event; no traceback wanted
                "events.subscribe_failed",
                subscription=subscription.name,
                queue=self.queue_name,
                error=repr(exc),
            )
            if self.channel is not None:
                await close_channel(self.channel, timeout_s)
            if not isinstance(exc, Exception):
                raise
            return
        subscription.set_live()
        log.debug("events.subscribed", subscription=subscription.name, queue=self.queue_name)

    async def teardown(self, timeout_s: float, broker_timeout_s: float) -> None:
        """Cancel the consumer, wait for runs in flight up to ``timeout_s`` (then cancel
        them), close the channel: deliveries not acked go back to the queue."""
        self.dispatcher.stop()
        if self.setup_task is not None and not self.setup_task.done():
            await asyncio.wait([self.setup_task], timeout=timeout_s)
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


def _leave_unacked(message: AbstractIncomingMessage) -> None:
    """Not run here: left unacked, so closing the channel returns it to the queue."""
