"""``Relay``: publishes the events table to one sink, in order, at least once (D7).

Per sink, at most one relay is active across all processes: the active one holds a
session-level advisory lock on a connection it keeps for as long as it runs; the others try
again every ``standby_retry_s``. If the active process dies, its connection (and so the lock)
goes with it, and a standby takes over from the checkpoint.

The loop: read the events after the checkpoint (``batch_size`` at most), publish them, and
only once the sink has acknowledged them move the checkpoint to the last one. A crash between
the two re-sends that batch after restart (same event ids), never skips one; a relay that
is stopped (its process shutting down) first lets the batch in flight be acknowledged and
checkpointed, so the relay taking over sends none of it again. A failed publish keeps the
checkpoint and retries with exponential backoff; the relay's status says why. It wakes on
``wake()`` (the store calls it after each local commit) and polls every ``poll_interval_s``
for commits of other processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import asyncpg
import structlog

from app.entities.event_log import read_after
from app.entities.records import StoredEvent
from app.entities.sinks import Sink
from app.entities.sql import Connection

__all__ = [
    "PoolClosing",
    "Relay",
    "RelayStatus",
    "SingletonConsumer",
    "consumer_lock_key",
    "ensure_checkpoint",
    "head_position",
    "unlock_consumer",
]

log = structlog.get_logger(__name__)

INITIAL_BACKOFF_S = 0.05


class PoolClosing(Exception):
    """The pool is being closed: a consumer lets its connection go (``pool.close()`` waits
    for every connection, and a consumer otherwise holds one for as long as it runs)."""


def consumer_lock_key(name: str) -> int:
    """A stable advisory lock key (signed 64-bit) for a consumer's name."""
    digest = hashlib.sha256(f"datalayer.consumer:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


async def head_position(conn: Connection | asyncpg.Pool) -> int:
    """The newest committed position (0 with no events)."""
    value = await conn.fetchval("SELECT coalesce(max(global_position), 0) FROM events")
    return int(value)


async def ensure_checkpoint(conn: Connection, name: str) -> int:
    await conn.execute(
        "INSERT INTO event_checkpoints (name) VALUES ($1) ON CONFLICT (name) DO NOTHING", name
    )
    return int(await conn.fetchval("SELECT position FROM event_checkpoints WHERE name = $1", name))


@dataclass(frozen=True)
class RelayStatus:
    """What a relay reports to readiness."""

    sink: str
    active: bool
    checkpoint: int | None
    delivered: int
    last_error: str | None

    def as_json(self) -> dict[str, object]:
        return {
            "active": self.active,
            "checkpoint": self.checkpoint,
            "delivered": self.delivered,
            "last_error": self.last_error,
        }


class SingletonConsumer:
    """What the relay and the projection runner share: at most one active per name across
    processes (a session advisory lock on a connection held while active, standbys trying
    again every ``standby_retry_s``), sleeps that ``wake()`` cuts short, and a retry delay
    after a database error that doubles up to ``max_backoff_s`` and starts over once
    Postgres answers again. A subclass supplies ``_pump`` (its work while active)."""

    _kind: str  # in log event names: "relay", "projection"

    def __init__(
        self, pool: asyncpg.Pool, name: str, *, standby_retry_s: float, max_backoff_s: float
    ) -> None:
        self._pool = pool
        self.name = name
        self._standby_s = standby_retry_s
        self._max_backoff_s = max_backoff_s
        self._lock_key = consumer_lock_key(name)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._active = False
        self._last_error: str | None = None

    def wake(self) -> None:
        """New events were committed here: look now rather than at the next poll."""
        self._wake.set()

    def _stopped(self) -> bool:
        return False

    async def _pump(self, conn: Connection) -> None:
        raise NotImplementedError

    async def _run(self) -> None:
        backoff = INITIAL_BACKOFF_S
        while not self._stopped() and not self._pool.is_closing():
            try:
                async with self._pool.acquire() as conn:
                    locked = await conn.fetchval("SELECT pg_try_advisory_lock($1)", self._lock_key)
                    backoff = INITIAL_BACKOFF_S  # Postgres answers again
                    if locked:
                        try:
                            self._active = True
                            log.info(f"entities.{self._kind}_active", name=self.name)
                            await self._pump(conn)
                        finally:
                            self._active = False
                            await unlock_consumer(conn, self._lock_key)
                await self._sleep(self._standby_s)
            except asyncio.CancelledError:
                raise
            except PoolClosing:
                break
            except Exception as exc:
                if self._pool.is_closing():
                    break  # Postgres went away: the lock went with the session
                self._last_error = f"{type(exc).__name__}: {exc}"
                log.warning(
                    f"entities.{self._kind}_db_error", name=self.name, error=self._last_error
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._max_backoff_s)

    async def _sleep(self, seconds: float) -> None:
        """Until woken or ``seconds`` pass."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._wake.wait()
        if self._pool.is_closing():
            raise PoolClosing


class Relay(SingletonConsumer):
    """Moves events from the table to ``sink``; ``start()``/``stop()`` run it as a task."""

    _kind = "relay"

    def __init__(
        self,
        pool: asyncpg.Pool,
        sink: Sink,
        *,
        batch_size: int = 100,
        poll_interval_s: float = 0.5,
        max_backoff_s: float = 5.0,
        publish_timeout_s: float = 30.0,
        standby_retry_s: float = 1.0,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        super().__init__(
            pool,
            f"relay:{sink.name}",
            standby_retry_s=standby_retry_s,
            max_backoff_s=max_backoff_s,
        )
        self.sink = sink
        self._batch = batch_size
        self._poll_s = poll_interval_s
        self._publish_timeout_s = publish_timeout_s
        # Set by stop(); an Event, as mypy would narrow a bool away in the loops that test it.
        self._stopping = asyncio.Event()
        # Cleared from the start of a publish until its checkpoint is written.
        self._between_batches = asyncio.Event()
        self._between_batches.set()
        self._checkpoint: int | None = None
        self._delivered = 0

    def status(self) -> RelayStatus:
        return RelayStatus(
            self.sink.name, self._active, self._checkpoint, self._delivered, self._last_error
        )

    async def start(self) -> None:
        if self._task is None:
            self._stopping.clear()
            self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        """Stop once the batch in flight, if any, is acknowledged and checkpointed (no new one
        starts), so the relay taking over sends none of it again. A batch still unfinished
        after ``publish_timeout_s`` is cut short; the next active relay re-sends it."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping.set()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._publish_timeout_s):
                await self._between_batches.wait()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    def _stopped(self) -> bool:
        return self._stopping.is_set()

    async def _pump(self, conn: Connection) -> None:
        position = await ensure_checkpoint(conn, self.name)
        self._checkpoint = position
        backoff = INITIAL_BACKOFF_S
        while not self._stopping.is_set():
            self._wake.clear()
            events = await read_after(conn, position, self._batch)
            if not events:
                await self._sleep(self._poll_s)
                continue
            if self._stopping.is_set():  # start no batch that stop() would cut short
                return
            with self._batch_in_flight():
                failure = await self._publish(events)
                if failure is None:
                    position = events[-1].global_position
                    await conn.execute(
                        "UPDATE event_checkpoints SET position = $2, updated_at = now() "
                        "WHERE name = $1",
                        self.name,
                        position,
                    )
            if failure is not None:
                self._last_error = f"publish to {self.sink.name} failed: {type(failure).__name__}"
                log.warning(
                    "entities.relay_publish_failed",
                    relay=self.name,
                    position=position,
                    error=f"{type(failure).__name__}: {failure}",
                    retry_in_s=backoff,
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._max_backoff_s)
                continue
            self._checkpoint = position
            self._delivered += len(events)
            self._last_error = None
            backoff = INITIAL_BACKOFF_S

    async def _publish(self, events: Sequence[StoredEvent]) -> Exception | None:
        """Send ``events``; the error if the sink did not acknowledge them all in time."""
        try:
            async with asyncio.timeout(self._publish_timeout_s):
                await self.sink.publish(events)
        except Exception as exc:
            return exc
        return None

    @contextlib.contextmanager
    def _batch_in_flight(self) -> Iterator[None]:
        """What ``stop()`` waits for: from the start of a publish to its checkpoint."""
        self._between_batches.clear()
        try:
            yield
        finally:
            self._between_batches.set()


async def unlock_consumer(conn: Connection, key: int) -> None:
    """Release the relay lock if the session still holds it (it may be gone with the
    connection, which releases it anyway)."""
    if conn.is_closed():
        return
    try:
        await conn.execute("SELECT pg_advisory_unlock($1)", key)
    except Exception as exc:  # a broken connection: closing it releases the lock
        log.warning("entities.consumer_unlock_failed", error=repr(exc))
        conn.terminate()
