"""The Redis :class:`~app.state.protocol.StateBackend`, shared by every replica.

Every read-modify-write is one Lua script run by SHA (see :mod:`app.state.scripts`), so each
operation is one round trip; plain writes and reads are single commands (``SET``, ``GET``,
``DEL``). Time comes from Redis ``TIME`` inside the rate-limit script, never from a client.
Keys: ``<namespace>:<kind>:<key>`` with kind ``v`` values, ``s`` sessions, ``e`` embeddings,
``l`` locks and ``r`` rate-limit logs (``r:<len(scope)>:<scope>:<window>:<user_id>``, so
no choice of scope and user id can produce another pair's key).

A client passed in belongs to the caller (the container): :meth:`RedisStateBackend.close`
only refuses further calls; it does not close that client. One built by
:meth:`RedisStateBackend.from_url` belongs to the backend, and ``close`` closes it.
"""

from __future__ import annotations

import math
import uuid
from typing import Any, Final, Self

import structlog
from redis.asyncio import BlockingConnectionPool, Redis
from redis.exceptions import ClusterDownError, OutOfMemoryError, ReadOnlyError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from app.backends.redis import driver_info
from app.errors import (
    BackendClosedError,
    StateArgumentError,
    StateArgumentTypeError,
    StateBackendError,
    StateBackendUnavailableError,
)
from app.redis_ping import ping_shared
from app.state import codec
from app.state.protocol import Vector
from app.state.scripts import LuaScript, load_script
from app.state.validation import (
    DEFAULT_MAX_VALUE_BYTES,
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
from settings.secrets import mask_url

__all__ = ["RedisStateBackend", "check_bytes_client"]

log = structlog.get_logger(__name__)

_WINDOW_CACHE_SIZE: Final = 1024
_UNAVAILABLE: Final = (RedisConnectionError, RedisTimeoutError)
# Replies meaning "Redis cannot serve this now" (a replica, out of memory, busy with a script,
# loading, failing over): the call may succeed later, so they are StateBackendUnavailableError.
# Any other reply error (WRONGTYPE on a foreign key, a script bug) is a StateBackendError.
_REFUSED_NOW: Final = (ReadOnlyError, OutOfMemoryError, ClusterDownError)
_REFUSED_NOW_CODES: Final = frozenset(
    (
        "READONLY",
        "OOM",
        "BUSY",
        "LOADING",
        "MASTERDOWN",
        "CLUSTERDOWN",
        "TRYAGAIN",
        "MISCONF",
        "NOREPLICAS",
    ),
)


def check_bytes_client(redis: object, reason: str) -> None:
    """Refuse anything but a ``redis.asyncio.Redis`` client whose replies are bytes
    (``decode_responses=False``); ``reason`` says why the caller needs bytes."""
    if not isinstance(redis, Redis):
        raise StateArgumentTypeError(
            f"redis must be a redis.asyncio.Redis client, got {show(redis)}"
        )
    if redis.connection_pool.connection_kwargs.get("decode_responses"):
        raise StateArgumentError(
            f"redis must be created with decode_responses=False ({reason}); got a client with "
            "decode_responses=True"
        )


class RedisStateBackend:
    """State in Redis under ``namespace``; every replica with the same namespace shares it.

    Simplest: ``RedisStateBackend.from_url("redis://host:6379/0")``, which builds a client
    of its own on a blocking pool (and closes it in ``close``).

    A client passed in must:

    - return bytes (``decode_responses=False``): embeddings are binary;
    - sit on a pool that waits for a free connection under load: a
      ``BlockingConnectionPool`` (``Redis.from_pool(BlockingConnectionPool.from_url(...))``).
      redis-py's default pool (what ``Redis.from_url`` builds) is capped at 100 connections
      and fails the 101st concurrent call at once with "Too many connections", which this
      backend reports as ``StateBackendUnavailableError``;
    - stay open while the backend is used; the caller closes it after ``close()``.
    """

    def __init__(
        self,
        redis: Redis,
        *,
        namespace: str = "datalayer",
        max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES,
    ) -> None:
        check_bytes_client(redis, "cached embeddings are binary")
        self.namespace = check_key(namespace, "namespace")
        self.max_value_bytes = check_max_value_bytes(max_value_bytes)
        self.identity = uuid.uuid4().hex
        self._redis = redis
        self._owns_client = False
        self._closed = False
        self._values = f"{namespace}:v:"
        self._sessions = f"{namespace}:s:"
        self._embeddings = f"{namespace}:e:"
        self._locks = f"{namespace}:l:"
        self._rate = f"{namespace}:r:"
        # window_seconds -> (key part, window in microseconds, PEXPIRE in ms)
        self._windows: dict[float, tuple[str, int, int]] = {}
        self._rate_limit = load_script("rate_limit")
        self._lock_release = load_script("lock_release")
        self._lock_extend = load_script("lock_extend")
        self._increment = load_script("increment")
        self._session_touch = load_script("session_touch")

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        namespace: str = "datalayer",
        max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES,
        max_connections: int = 50,
        timeout_s: float = 5.0,
    ) -> Self:
        """A backend on a client of its own, built from a ``redis://`` or ``rediss://`` URL.

        The client's pool is blocking, as the container's (``app.backends.redis``): past
        ``max_connections`` concurrent calls a call waits up to ``timeout_s`` for a free
        connection instead of failing. ``timeout_s`` also bounds connecting and each reply.
        No connection is made here; ``close()`` closes the client.
        """
        if not isinstance(url, str) or not url:
            raise StateArgumentError(f"url must be a non-empty redis:// URL, got {show(url)}")
        if type(max_connections) is not int or max_connections < 1:
            raise StateArgumentError(
                f"max_connections must be an int >= 1, got {show(max_connections)}"
            )
        if (
            type(timeout_s) not in (int, float)
            or not 0 < timeout_s < math.inf  # NaN fails both comparisons
        ):
            raise StateArgumentError(
                f"timeout_s must be a finite number of seconds > 0, got {show(timeout_s)}"
            )
        try:
            pool = BlockingConnectionPool.from_url(
                url,
                max_connections=max_connections,
                timeout=timeout_s,
                socket_timeout=timeout_s,
                socket_connect_timeout=timeout_s,
                driver_info=driver_info(),
            )
        except ValueError as exc:  # a bad scheme or query value; the URL is masked
            raise StateArgumentError(
                f"url must be a redis://, rediss:// or unix:// URL, got {mask_url(url)!r}: {exc}"
            ) from exc
        backend = cls(Redis.from_pool(pool), namespace=namespace, max_value_bytes=max_value_bytes)
        backend._owns_client = True
        return backend

    @property
    def client(self) -> Redis:
        """The Redis client this backend uses (owned by the caller), for stores that share
        its connection pool and namespace (the session store)."""
        return self._redis

    # -- plumbing --------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise BackendClosedError(
                "RedisStateBackend is closed; no call is allowed after close()"
            )

    def _unavailable(self, what: str, exc: Exception) -> StateBackendUnavailableError:
        return StateBackendUnavailableError(
            f"Redis did not answer {what} for state namespace {self.namespace!r}: {exc}"
        )

    def _refused(self, what: str, exc: ResponseError) -> StateBackendError:
        """Redis answered ``what`` with an error reply: typed, with Redis' own words."""
        code = exc.status_code or str(exc).partition(" ")[0]
        message = f"Redis refused {what} for state namespace {self.namespace!r}: {exc}"
        if isinstance(exc, _REFUSED_NOW) or code in _REFUSED_NOW_CODES:
            return StateBackendUnavailableError(message)
        return StateBackendError(message)

    async def _command(self, *args: Any) -> Any:
        try:
            return await self._redis.execute_command(*args)  # type: ignore[no-untyped-call]
        except _UNAVAILABLE as exc:
            raise self._unavailable(args[0], exc) from exc
        except ResponseError as exc:
            raise self._refused(args[0], exc) from exc

    async def _eval(self, script: LuaScript, key: str, *args: Any) -> Any:
        try:
            return await script.run(self._redis, 1, key, *args)
        except _UNAVAILABLE as exc:
            raise self._unavailable(f"script {script.name}", exc) from exc
        except ResponseError as exc:
            raise self._refused(f"script {script.name}", exc) from exc

    async def ping(self) -> bool:
        """Round-trip to Redis; True if it answered."""
        self._check_open()
        try:
            await ping_shared(self._redis)  # one PING with a concurrent one on the client
        except _UNAVAILABLE as exc:
            raise self._unavailable("PING", exc) from exc
        return True

    async def close(self) -> None:
        """Refuse further calls; idempotent. A client passed in stays open (the caller owns
        it); the one :meth:`from_url` built is closed."""
        if not self._closed:
            self._closed = True
            if self._owns_client:
                await self._redis.aclose()
            log.debug("state.closed", namespace=self.namespace, backend="redis")

    # -- rate limiting ---------------------------------------------------------------------

    def _window(self, window: float) -> tuple[str, int, int]:
        cached = self._windows.get(window)
        if cached is None:
            if len(self._windows) >= _WINDOW_CACHE_SIZE:
                self._windows.clear()
            cached = (repr(window), max(1, math.ceil(window * 1e6)), math.ceil(window * 1e3))
            self._windows[window] = cached
        return cached

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
        part, window_us, window_ms = self._window(window)
        key = f"{self._rate}{len(scope)}:{scope}:{part}:{user_id}"
        allowed, remaining = await self._eval(self._rate_limit, key, limit, window_us, window_ms)
        return bool(allowed), remaining

    # -- locks -----------------------------------------------------------------------------

    async def acquire_lock(
        self, key: str, ttl_seconds: float = 30, owner: str | None = None
    ) -> bool:
        """``SET NX PX``: take the lease if it is free; never blocks, not re-entrant."""
        self._check_open()
        check_key(key)
        ttl_ms = check_lock_ttl(ttl_seconds)
        holder = check_owner(owner, self.identity)
        return bool(await self._command("SET", self._locks + key, holder, "NX", "PX", ttl_ms))

    async def release_lock(self, key: str, owner: str | None = None) -> bool:
        """Compare-and-delete on the owner token."""
        self._check_open()
        check_key(key)
        holder = check_owner(owner, self.identity)
        return bool(await self._eval(self._lock_release, self._locks + key, holder))

    async def extend_lock(self, key: str, ttl_seconds: float, owner: str | None = None) -> bool:
        """Compare-and-expire on the owner token: the remaining lease becomes ``ttl_seconds``."""
        self._check_open()
        check_key(key)
        ttl_ms = check_lock_ttl(ttl_seconds)
        holder = check_owner(owner, self.identity)
        return bool(await self._eval(self._lock_extend, self._locks + key, holder, ttl_ms))

    # -- embeddings ------------------------------------------------------------------------

    async def cache_embedding(
        self, text_hash: str, vector: Vector, ttl: float | None = 3600
    ) -> None:
        """Store ``vector`` as little-endian float32."""
        self._check_open()
        check_key(text_hash, "text_hash")
        ttl_ms = check_ttl(ttl)
        blob = codec.encode_vector(vector, self.max_value_bytes)
        await self._set(self._embeddings + text_hash, blob, ttl_ms)

    async def get_cached_embedding(self, text_hash: str) -> list[float] | None:
        """A new list of the cached floats, or None (missing, expired or corrupt)."""
        self._check_open()
        check_key(text_hash, "text_hash")
        blob = await self._command("GET", self._embeddings + text_hash)
        return None if blob is None else codec.decode_vector(blob, text_hash)

    # -- sessions --------------------------------------------------------------------------

    async def set_session(
        self, session_id: str, data: dict[str, Any], ttl: float | None = None
    ) -> None:
        """Replace the session's data and TTL."""
        self._check_open()
        check_key(session_id, "session_id")
        ttl_ms = check_ttl(ttl)
        blob = codec.encode_session(data, ttl_ms, self.max_value_bytes)
        await self._set(self._sessions + session_id, blob, ttl_ms)

    async def get_session(self, session_id: str, *, touch: bool = False) -> dict[str, Any] | None:
        """A copy of the session's data; ``touch=True`` renews the TTL it was stored with."""
        self._check_open()
        check_key(session_id, "session_id")
        key = self._sessions + session_id
        if touch:
            blob = await self._eval(self._session_touch, key)
        else:
            blob = await self._command("GET", key)
        return None if blob is None else codec.decode_session(blob, key)[0]

    async def delete_session(self, session_id: str) -> bool:
        """Remove the session; True iff a live one was removed."""
        self._check_open()
        check_key(session_id, "session_id")
        return bool(await self._command("DEL", self._sessions + session_id))

    # -- values and counters ---------------------------------------------------------------

    async def _set(self, key: str, blob: bytes, ttl_ms: int | None) -> None:
        if ttl_ms is None:
            await self._command("SET", key, blob)
        else:
            await self._command("SET", key, blob, "PX", ttl_ms)

    async def set_value(self, key: str, value: Any, ttl: float | None = None) -> None:
        """Replace the value and its TTL (None clears an old TTL)."""
        self._check_open()
        check_key(key)
        ttl_ms = check_ttl(ttl)
        blob = codec.encode_json(value, "value", self.max_value_bytes)
        await self._set(self._values + key, blob, ttl_ms)

    async def get_value(self, key: str) -> Any | None:
        """A copy of the stored value, or None if missing or expired."""
        self._check_open()
        check_key(key)
        blob = await self._command("GET", self._values + key)
        return None if blob is None else codec.decode_json(blob, self._values + key)

    async def delete(self, key: str) -> bool:
        """Remove a plain value; True iff a live key was removed."""
        self._check_open()
        check_key(key)
        return bool(await self._command("DEL", self._values + key))

    async def increment(self, key: str, amount: int = 1, ttl: float | None = None) -> int:
        """Add ``amount`` to a signed 64-bit counter; ``ttl`` applies only on creation."""
        self._check_open()
        check_key(key)
        check_amount(amount)
        ttl_ms = check_ttl(ttl)
        script = self._increment
        try:
            result = await script.run(
                self._redis, 1, self._values + key, amount, "" if ttl_ms is None else ttl_ms
            )
        except _UNAVAILABLE as exc:
            raise self._unavailable(f"script {script.name}", exc) from exc
        except ResponseError as exc:
            # INCRBY's two replies about the stored value; amount and ttl were validated, so
            # neither can be about them (see increment.lua). Anything else is Redis refusing.
            reply = str(exc)
            if "not an integer or out of range" in reply:
                raise StateArgumentTypeError(
                    f"value under key {key!r} must be a signed 64-bit int to increment: {reply}"
                ) from exc
            if "increment or decrement would overflow" in reply:
                raise StateArgumentError(
                    f"increment of key {key!r} by {amount} would overflow a signed 64-bit int"
                ) from exc
            raise self._refused(f"script {script.name}", exc) from exc
        return int(result)
