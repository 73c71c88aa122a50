"""The delivery engine both buses share: per-subscription workers, retries, timeouts.

A :class:`Dispatcher` runs one subscription's deliveries: it decodes each item into a
fresh event, runs the handler, and settles the item: success, or after ``max_attempts``
failed runs (exponential backoff between them) a dead letter. In-process, ``feed``
queues items for ``concurrency`` long-lived worker tasks (created on the first delivery,
never per event). RabbitMQ calls ``run`` instead, in the task aio-pika already gives
each delivery (the prefetch count bounds how many). The buses differ only in the item
type and the settle callbacks: in-process items are ``(event, payload_json)`` and a dead
letter goes to ``bus.dead_letters``; RabbitMQ items are incoming messages, acked on
success and rejected to the dead-letter exchange.

A failed run is any exception from the handler except a cancellation: ``Exception``s and
other ``BaseException``s alike (pytest's outcomes, a ``BaseExceptionGroup``). A
``KeyboardInterrupt`` or ``SystemExit`` also counts as a failed run, but it is not
retried: the delivery is settled at once (dead-lettered if that was the last attempt,
else given back: RabbitMQ nacks it for redelivery, in-process it is dropped, counted)
and the interrupt is re-raised. A worker it ends is replaced.

Handler timeouts use one ``Deadlines`` per dispatcher (one timer, not one per run).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Final, Generic, TypeVar

import structlog

from app.errors import HandlerTimeoutError, MalformedEventError
from app.events.deadlines import Deadline, Deadlines
from app.events.model import DataEvent
from app.events.subscription import BusStats, DeadLetter, Subscription

__all__ = ["HIGH_WATER", "Dispatcher", "in_worker"]

log = structlog.get_logger(__name__)

T = TypeVar("T")
MAX_BACKOFF_S: Final = 10.0
# Settled at once and re-raised, never retried (the process is being stopped).
INTERRUPTS: Final = (KeyboardInterrupt, SystemExit)
# Backpressure for in-process publishers: over HIGH_WATER queued items ``publish`` waits
# until the queue is down to LOW_WATER (except when called from a handler: no deadlock).
HIGH_WATER: Final = 1024
LOW_WATER: Final = HIGH_WATER // 2
_in_worker: ContextVar[bool] = ContextVar("events_in_worker", default=False)


def in_worker() -> bool:
    """True inside a handler run (or a task it started)."""
    return _in_worker.get()


class Dispatcher(Generic[T]):
    """Runs one subscription's deliveries; see the module docstring."""

    def __init__(
        self,
        subscription: Subscription,
        *,
        stats: BusStats,
        handler_timeout_s: float,
        retry_backoff_s: float,
        decode: Callable[[T], DataEvent],
        on_success: Callable[[T], Awaitable[None]] | None,
        on_dead: Callable[[T, DeadLetter], Awaitable[None]],
        on_requeue: Callable[[T], Awaitable[None]],
        on_drop: Callable[[T], None],
        on_error: Callable[[BaseException], None],
    ) -> None:
        self.subscription = subscription
        self._stats = stats
        self._timeout = handler_timeout_s
        self._backoff = retry_backoff_s
        self._decode = decode
        self._on_success = on_success
        self._on_dead = on_dead
        self._on_requeue = on_requeue
        self._on_drop = on_drop
        self._on_error = on_error
        self._queue: deque[T] = deque()
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._workers: list[asyncio.Task[None]] = []
        self._inline: set[asyncio.Task[object]] = set()  # tasks inside run()
        self._deadlines = Deadlines()
        self._stopping = False
        self._stop_signal: asyncio.Future[None] | None = None
        self._room: asyncio.Future[None] | None = None
        self.pending = 0  # items fed and not yet settled
        self.idle = asyncio.Event()
        self.idle.set()

    # -- intake ------------------------------------------------------------------------

    def feed(self, item: T) -> None:
        """Queue one delivery (never runs the handler here)."""
        if self._stopping:
            self._stats.dropped += 1
            self._on_drop(item)
            return
        self._queue.append(item)
        self.pending += 1
        if self.pending == 1:
            self.idle.clear()
        if not self._workers:
            self._start()
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                break

    async def run(self, item: T) -> None:
        """Process ``item`` in the calling task, without a worker.

        For RabbitMQ, where aio-pika already runs each delivery in a task of its own and
        the prefetch count bounds how many: the hand-off to a worker would only add a
        wake-up per message. Same decoding, retries, timeouts and settling as a worker.
        """
        if self._stopping:
            self._stats.dropped += 1
            self._on_drop(item)
            return
        task: asyncio.Task[object] | None = asyncio.current_task()
        assert task is not None
        deadline = self._deadlines.watch(task)
        self._inline.add(task)
        self.pending += 1
        if self.pending == 1:
            self.idle.clear()
        try:
            try:
                event = self._decode(item)
            except Exception as exc:  # any undecodable message is dead-lettered
                await self._undecodable(item, exc)
                return
            error = await self._attempt(deadline, event)
            if error is None:
                self._stats.delivered += 1
                if self._on_success is not None:
                    await self._on_success(item)
            else:
                await self._recover(deadline, item, event, error)
        except asyncio.CancelledError:
            self._stats.dropped += 1
            self._on_drop(item)
            raise
        finally:
            self._deadlines.unwatch(deadline)
            self._inline.discard(task)
            self._settled()

    async def room(self) -> None:
        """Wait until the queue is down to LOW_WATER (publish's backpressure)."""
        if self._room is None:
            self._room = asyncio.get_running_loop().create_future()
        await asyncio.shield(self._room)

    def _start(self) -> None:
        for index in range(self.subscription.concurrency):
            self._spawn(index)

    def _spawn(self, index: int) -> None:
        task = asyncio.get_running_loop().create_task(
            self._work(), name=f"events.worker:{self.subscription.name}:{index}"
        )
        task.add_done_callback(self._worker_done)
        self._workers.append(task)

    def _worker_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        error = task.exception()
        if isinstance(error, INTERRUPTS):
            log.warning(
                "events.worker_interrupted", subscription=self.subscription.name, error=repr(error)
            )
        elif error is not None:
            log.error(
                "events.worker_crashed", subscription=self.subscription.name, error=repr(error)
            )

    # -- stopping ----------------------------------------------------------------------

    def stop(self) -> None:
        """Start no new runs; queued items are dropped (``on_drop``). Runs in flight go on."""
        if self._stopping:
            return
        self._stopping = True
        if self._stop_signal is not None and not self._stop_signal.done():
            self._stop_signal.set_result(None)
        while self._queue:
            item = self._queue.popleft()
            self._stats.dropped += 1
            self._on_drop(item)
            self._settled()
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._waiters.clear()
        if self._room is not None:
            self._room.set_result(None)
            self._room = None

    async def join(self, timeout_s: float | None) -> int:
        """After ``stop()``: wait for runs in flight up to ``timeout_s``, then cancel them.

        Returns how many runs were cancelled.
        """
        current = asyncio.current_task()
        tasks = [
            task
            for task in (*self._workers, *self._inline)
            if task is not current and not task.done()
        ]
        if not tasks:
            return 0
        _, still_running = await asyncio.wait(tasks, timeout=timeout_s)
        for task in still_running:
            task.cancel()
        if still_running:
            await asyncio.wait(still_running)
        self._deadlines.close()
        return len(still_running)

    # -- the worker --------------------------------------------------------------------

    async def _work(self) -> None:  # noqa: PLR0912, PLR0915 - hot path inlined
        _in_worker.set(True)
        loop = asyncio.get_running_loop()
        queue = self._queue
        handler = self.subscription.handler
        decode = self._decode
        stats = self._stats
        timeout = self._timeout
        deadlines = self._deadlines
        task: asyncio.Task[object] | None = asyncio.current_task()
        assert task is not None
        deadline = deadlines.watch(task)
        loop_time = loop.time
        item: T | None = None
        try:
            while True:
                if not queue:
                    if self._stopping:
                        return
                    waiter: asyncio.Future[None] = loop.create_future()
                    self._waiters.append(waiter)
                    await waiter
                    continue
                item = queue.popleft()
                try:
                    event = decode(item)
                except Exception as exc:  # any undecodable message is dead-lettered
                    await self._undecodable(item, exc)
                    item = None
                    self._settled()
                    continue
                # First attempt inline (the hot path); retries in _recover.
                deadline.at = at = loop_time() + timeout
                if at < deadlines.timer_when:
                    deadlines.arm(at)
                error: BaseException | None = None
                try:
                    await handler(event)
                except asyncio.CancelledError:
                    deadline.at = 0.0
                    if deadline.withdraw():
                        error = self._timed_out()
                    elif task.cancelling():
                        raise
                    else:
                        error = _stray_cancel()
                except BaseException as exc:  # any failure but a cancellation (see the top)
                    deadline.at = 0.0
                    deadline.withdraw()  # (a deadline passed as it failed: its error counts)
                    error = exc
                else:
                    deadline.at = 0.0
                    if deadline.expired and deadline.withdraw():  # it swallowed the cancel
                        error = self._timed_out()
                if error is None:
                    stats.delivered += 1
                    if self._on_success is not None:
                        await self._on_success(item)
                else:
                    await self._recover(deadline, item, event, error)
                item = None
                # self._settled(), inlined
                self.pending -= 1
                if not self.pending:
                    self.idle.set()
                if self._room is not None and self.pending <= LOW_WATER:
                    self._room.set_result(None)
                    self._room = None
        except asyncio.CancelledError:
            if item is not None:
                stats.dropped += 1
                self._on_drop(item)
                self._settled()
            raise
        except BaseException:
            # An interrupt re-raised by _recover after settling ``item`` (or a bug in a
            # settle callback): account for the item, replace this worker, propagate.
            if item is not None:
                self._settled()
            deadline.at = 0.0
            deadlines.unwatch(deadline)
            self._replace_worker(task)
            raise

    def _replace_worker(self, task: asyncio.Task[object]) -> None:
        """Forget the ending worker ``task`` and, unless stopping, start another."""
        for index, worker in enumerate(self._workers):
            if worker is task:
                del self._workers[index]
                if not self._stopping:
                    self._spawn(index)
                return

    def _settled(self) -> None:
        self.pending -= 1
        if self.pending == 0:
            self.idle.set()
        if self._room is not None and self.pending <= LOW_WATER:
            self._room.set_result(None)
            self._room = None

    async def _undecodable(self, item: T, exc: Exception) -> None:
        if not isinstance(exc, MalformedEventError):
            exc = MalformedEventError(f"message could not be decoded: {exc!r}")
        await self._give_up(item, None, exc, 0, "malformed")

    def _timed_out(self) -> HandlerTimeoutError:
        return HandlerTimeoutError(
            f"handler of {self.subscription.name} ran longer than handler_timeout_s={self._timeout}"
        )

    async def _attempt(self, deadline: Deadline, event: DataEvent) -> BaseException | None:
        """One more run of the handler (a retry); the error, or None on success."""
        self._deadlines.start(deadline, self._timeout)
        try:
            await self.subscription.handler(event)
        except asyncio.CancelledError:
            deadline.at = 0.0
            if deadline.withdraw():
                return self._timed_out()
            if deadline.task.cancelling():
                raise
            return _stray_cancel()
        except BaseException as exc:  # any failure but a cancellation (see the top)
            deadline.at = 0.0
            deadline.withdraw()
            return exc
        deadline.at = 0.0
        return self._timed_out() if deadline.withdraw() else None

    async def _recover(
        self,
        deadline: Deadline,
        item: T,
        event: DataEvent,
        error: BaseException,
    ) -> None:
        """Retry a failed delivery with backoff up to max_attempts, then dead-letter it.

        An interrupt (``KeyboardInterrupt``/``SystemExit``) is not retried: the delivery is
        dead-lettered if that was its last attempt, else given back (``on_requeue``), and
        the interrupt is re-raised.
        """
        attempts = 1
        max_attempts = self.subscription.max_attempts
        while True:
            self._stats.failed_attempts += 1
            interrupted = isinstance(error, INTERRUPTS)
            if not interrupted:  # an interrupt propagates itself; drain(fail_fast) needn't
                self._on_error(error)
            log.warning(
                "events.handler_failed",
                subscription=self.subscription.name,
                event_id=str(event.id),
                event_type=event.type,
                attempt=attempts,
                max_attempts=max_attempts,
                error=repr(error),
            )
            if attempts >= max_attempts:
                await self._give_up(item, event, error, attempts, "max_attempts")
                if interrupted:
                    raise error
                return
            if interrupted:
                self._stats.dropped += 1
                await self._on_requeue(item)
                raise error
            delay = min(MAX_BACKOFF_S, self._backoff * 2 ** (attempts - 1))
            if await self._stopped_within(delay):
                self._stats.dropped += 1
                self._on_drop(item)
                return
            attempts += 1
            self._stats.retried += 1
            retry_error = await self._attempt(deadline, event)
            if retry_error is None:
                self._stats.delivered += 1
                if self._on_success is not None:
                    await self._on_success(item)
                return
            error = retry_error

    async def _stopped_within(self, delay: float) -> bool:
        """Sleep ``delay`` seconds unless stop() comes first; True if it did."""
        if self._stopping:
            return True
        if self._stop_signal is None:
            self._stop_signal = asyncio.get_running_loop().create_future()
        await asyncio.wait([self._stop_signal], timeout=delay)
        return self._stopping

    async def _give_up(
        self, item: T, event: DataEvent | None, error: BaseException, attempts: int, reason: str
    ) -> None:
        letter = DeadLetter(
            subscription=self.subscription.name,
            event=event,
            error=error,
            attempts=attempts,
            reason=reason,
        )
        self._stats.dead_lettered += 1
        log.error(
            "events.dead_lettered",
            subscription=self.subscription.name,
            event_id=None if event is None else str(event.id),
            event_type=None if event is None else event.type,
            attempts=attempts,
            reason=reason,
            error=repr(error),
        )
        await self._on_dead(item, letter)


def _stray_cancel() -> RuntimeError:
    return RuntimeError("handler raised CancelledError without being cancelled")
