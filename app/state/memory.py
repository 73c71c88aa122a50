"""The in-memory :class:`~app.state.protocol.StateBackend` for a single node.

Every method runs to completion without awaiting, so each call is atomic on the event loop
(asyncio-safe; not thread-safe). Time is ``time.monotonic()`` (or an injected clock). Expired
entries read as missing at once (lazy expiry on access); :meth:`InMemoryStateBackend.sweep`,
run periodically by the task :meth:`~InMemoryStateBackend.start` creates, frees their memory
and that of idle rate-limit logs. Values are stored encoded (the codec both backends share),
so what comes back is always a fresh copy.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any, Final, TypeVar

import structlog

from app.errors import BackendClosedError, StateArgumentError, StateArgumentTypeError
from app.state import codec
from app.state.protocol import Vector
from app.state.validation import (
    DEFAULT_MAX_VALUE_BYTES,
    INT64_MAX,
    INT64_MIN,
    check_amount,
    check_key,
    check_limit,
    check_lock_ttl,
    check_max_value_bytes,
    check_owner,
    check_ttl,
    check_window,
    show,
)

__all__ = ["InMemoryStateBackend"]

log = structlog.get_logger(__name__)

_NEVER: Final = math.inf
_T = TypeVar("_T")
# key -> (payload, monotonic expiry time or inf)
_Table = dict[str, tuple[_T, float]]
_RateKey = tuple[str, str, float]


def _expiry(now: float, ttl_ms: int | None) -> float:
    return _NEVER if ttl_ms is None else now + ttl_ms / 1000


def _unexpired(table: _Table[_T], now: float) -> _Table[_T]:
    """A compact copy of ``table`` without its expired entries."""
    return {key: entry for key, entry in table.items() if entry[1] > now}


def _live(table: _Table[_T], key: str, now: float) -> tuple[_T, float] | None:
    """The entry under ``key`` if it has not expired; an expired one is removed."""
    entry = table.get(key)
    if entry is not None and entry[1] <= now:
        del table[key]
        return None
    return entry


class InMemoryStateBackend:
    """State for one process: the same contract as the Redis backend, kept in dicts.

    ``clock`` (seconds, monotonic) is for tests; ``namespace`` only labels logs here, since
    nothing is shared. Call :meth:`start` to run the periodic sweep and :meth:`close` to stop.
    """

    def __init__(
        self,
        *,
        namespace: str = "datalayer",
        max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.namespace = check_key(namespace, "namespace")
        if clock is not None and not callable(clock):
            raise StateArgumentTypeError(
                f"clock must be a callable returning seconds, got {show(clock)}"
            )
        self.max_value_bytes = check_max_value_bytes(max_value_bytes)
        self.identity = uuid.uuid4().hex
        self._clock: Callable[[], float] = clock or time.monotonic
        self._closed = False
        self._started = False
        self._sweeper: asyncio.Task[None] | None = None
        self._values: _Table[bytes] = {}
        self._sessions: _Table[bytes] = {}
        self._embeddings: _Table[bytes] = {}
        self._locks: _Table[str] = {}
        self._rate: dict[_RateKey, deque[float]] = {}

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self, sweep_interval_s: float | None = 30.0) -> None:
        """Start the periodic sweep every ``sweep_interval_s`` seconds (None: no task)."""
        self._check_open()
        if self._started:
            raise RuntimeError("InMemoryStateBackend.start() was already called")
        if sweep_interval_s is None:
            self._started = True
            return
        interval = check_window(sweep_interval_s, "sweep_interval_s")
        self._started = True
        self._sweeper = asyncio.create_task(self._sweep_forever(interval), name="state.sweeper")
        self._sweeper.add_done_callback(_report_sweeper_death)
        log.debug("state.sweeper_started", namespace=self.namespace, interval_s=interval)

    async def _sweep_forever(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            removed = self.sweep()
            if removed:
                log.debug("state.swept", namespace=self.namespace, removed=removed)

    def sweep(self) -> int:
        """Remove expired entries and idle rate-limit logs now; return how many were removed.

        Synchronous: it runs in one go on the event loop (O(number of keys)). The tables are
        rebuilt rather than deleted from, because a Python dict never shrinks its storage.
        """
        self._check_open()
        now = self._clock()
        before = self._entry_count()
        self._values = _unexpired(self._values, now)
        self._sessions = _unexpired(self._sessions, now)
        self._embeddings = _unexpired(self._embeddings, now)
        self._locks = _unexpired(self._locks, now)
        self._rate = {
            key: stamps
            for key, stamps in self._rate.items()
            if stamps and stamps[-1] > now - key[2]
        }
        return before - self._entry_count()

    def _entry_count(self) -> int:
        return (
            len(self._values)
            + len(self._sessions)
            + len(self._embeddings)
            + len(self._locks)
            + len(self._rate)
        )

    def stats(self) -> dict[str, int]:
        """How many entries each kind of state holds now (expired ones until swept)."""
        return {
            "values": len(self._values),
            "sessions": len(self._sessions),
            "embeddings": len(self._embeddings),
            "locks": len(self._locks),
            "rate_limit_logs": len(self._rate),
            "rate_limit_stamps": sum(len(stamps) for stamps in self._rate.values()),
        }

    async def ping(self) -> bool:
        """Always True while open (there is nothing to reach)."""
        self._check_open()
        return True

    async def close(self) -> None:
        """Stop the sweep task, drop all state and refuse further calls; idempotent."""
        if self._closed:
            return
        self._closed = True
        sweeper, self._sweeper = self._sweeper, None
        if sweeper is not None:
            sweeper.cancel()
            await asyncio.wait([sweeper])
        for table in (self._values, self._sessions, self._embeddings, self._locks, self._rate):
            table.clear()
        log.debug("state.closed", namespace=self.namespace, backend="memory")

    def _check_open(self) -> None:
        if self._closed:
            raise BackendClosedError(
                "InMemoryStateBackend is closed; no call is allowed after close()"
            )

    # -- rate limiting ---------------------------------------------------------------------

    async def rate_limit_check(
        self, user_id: str, limit: int, window_seconds: float, *, scope: str = "default"
    ) -> tuple[bool, int]:
        """Sliding log of allowed calls in ``(now - window, now]``; see R1-R9 in
        docs/contracts/state.md."""
        if self._closed:
            self._check_open()
        check_key(user_id, "user_id")
        check_key(scope, "scope")
        check_limit(limit)
        window = check_window(window_seconds)
        if limit == 0:
            return False, 0
        now = self._clock()
        key = (scope, user_id, window)
        stamps = self._rate.get(key)
        if stamps is None:
            self._rate[key] = deque((now,))
            return True, limit - 1
        cutoff = now - window
        while stamps and stamps[0] <= cutoff:
            stamps.popleft()
        count = len(stamps)
        if count >= limit:
            for _ in range(count - limit):  # a smaller limit than before: keep the newest
                stamps.popleft()
            return False, 0
        stamps.append(now)
        return True, limit - count - 1

    # -- locks -----------------------------------------------------------------------------

    async def acquire_lock(
        self, key: str, ttl_seconds: float = 30, owner: str | None = None
    ) -> bool:
        """Take the lease if it is free or expired; never blocks, not re-entrant."""
        self._check_open()
        check_key(key)
        ttl_ms = check_lock_ttl(ttl_seconds)
        holder = check_owner(owner, self.identity)
        now = self._clock()
        if _live(self._locks, key, now) is not None:
            return False
        self._locks[key] = (holder, now + ttl_ms / 1000)
        return True

    async def release_lock(self, key: str, owner: str | None = None) -> bool:
        """Release the lease iff ``owner`` holds it and it has not expired."""
        self._check_open()
        check_key(key)
        holder = check_owner(owner, self.identity)
        entry = _live(self._locks, key, self._clock())
        if entry is None or entry[0] != holder:
            return False
        del self._locks[key]
        return True

    async def extend_lock(self, key: str, ttl_seconds: float, owner: str | None = None) -> bool:
        """Set the remaining lease to ``ttl_seconds`` iff ``owner`` holds the live lock."""
        self._check_open()
        check_key(key)
        ttl_ms = check_lock_ttl(ttl_seconds)
        holder = check_owner(owner, self.identity)
        now = self._clock()
        entry = _live(self._locks, key, now)
        if entry is None or entry[0] != holder:
            return False
        self._locks[key] = (holder, now + ttl_ms / 1000)
        return True

    # -- embeddings ------------------------------------------------------------------------

    async def cache_embedding(
        self, text_hash: str, vector: Vector, ttl: float | None = 3600
    ) -> None:
        """Store ``vector`` as little-endian float32 (the same bytes Redis would hold)."""
        self._check_open()
        check_key(text_hash, "text_hash")
        ttl_ms = check_ttl(ttl)
        blob = codec.encode_vector(vector, self.max_value_bytes)
        self._embeddings[text_hash] = (blob, _expiry(self._clock(), ttl_ms))

    async def get_cached_embedding(self, text_hash: str) -> list[float] | None:
        """A new list of the cached floats, or None (missing, expired or corrupt)."""
        self._check_open()
        check_key(text_hash, "text_hash")
        entry = _live(self._embeddings, text_hash, self._clock())
        return None if entry is None else codec.decode_vector(entry[0], text_hash)

    # -- sessions --------------------------------------------------------------------------

    async def set_session(
        self, session_id: str, data: dict[str, Any], ttl: float | None = None
    ) -> None:
        """Replace the session's data and TTL."""
        self._check_open()
        check_key(session_id, "session_id")
        ttl_ms = check_ttl(ttl)
        blob = codec.encode_session(data, ttl_ms, self.max_value_bytes)
        self._sessions[session_id] = (blob, _expiry(self._clock(), ttl_ms))

    async def get_session(self, session_id: str, *, touch: bool = False) -> dict[str, Any] | None:
        """A copy of the session's data; ``touch=True`` renews the TTL it was stored with."""
        self._check_open()
        check_key(session_id, "session_id")
        now = self._clock()
        entry = _live(self._sessions, session_id, now)
        if entry is None:
            return None
        data, ttl_ms = codec.decode_session(entry[0])
        if touch and ttl_ms is not None:
            self._sessions[session_id] = (entry[0], now + ttl_ms / 1000)
        return data

    async def delete_session(self, session_id: str) -> bool:
        """Remove the session; True iff a live one was removed."""
        self._check_open()
        check_key(session_id, "session_id")
        if _live(self._sessions, session_id, self._clock()) is None:
            return False
        del self._sessions[session_id]
        return True

    # -- values and counters ---------------------------------------------------------------

    async def set_value(self, key: str, value: Any, ttl: float | None = None) -> None:
        """Replace the value and its TTL (None clears an old TTL)."""
        self._check_open()
        check_key(key)
        ttl_ms = check_ttl(ttl)
        blob = codec.encode_json(value, "value", self.max_value_bytes)
        self._values[key] = (blob, _expiry(self._clock(), ttl_ms))

    async def get_value(self, key: str) -> Any | None:
        """A copy of the stored value, or None if missing or expired."""
        self._check_open()
        check_key(key)
        entry = _live(self._values, key, self._clock())
        return None if entry is None else codec.decode_json(entry[0])

    async def delete(self, key: str) -> bool:
        """Remove a plain value; True iff a live key was removed."""
        self._check_open()
        check_key(key)
        if _live(self._values, key, self._clock()) is None:
            return False
        del self._values[key]
        return True

    async def increment(self, key: str, amount: int = 1, ttl: float | None = None) -> int:
        """Add ``amount`` to a signed 64-bit counter; ``ttl`` applies only on creation."""
        self._check_open()
        check_key(key)
        check_amount(amount)
        ttl_ms = check_ttl(ttl)
        now = self._clock()
        entry = _live(self._values, key, now)
        if entry is None:
            result, expires_at = amount, _expiry(now, ttl_ms)
        else:
            current = codec.decode_json(entry[0])
            if type(current) is not int or not INT64_MIN <= current <= INT64_MAX:
                raise StateArgumentTypeError(
                    f"value under key {key!r} must be a signed 64-bit int to increment,"
                    f" got {show(current)}"
                )
            result, expires_at = current + amount, entry[1]
            if not INT64_MIN <= result <= INT64_MAX:
                raise StateArgumentError(
                    f"increment of key {key!r} by {amount} would overflow a signed 64-bit int"
                )
        self._values[key] = (b"%d" % result, expires_at)
        return result


def _report_sweeper_death(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("state.sweeper_failed", exc_info=task.exception())
