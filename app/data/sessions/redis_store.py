"""``RedisSessionStore``: every create, touch and eviction is one Lua script (one round trip).

Keys under ``<namespace>:sm:``: ``s:<id>`` a session hash (``u`` user, ``c`` created, ``a``
last activity, ``m:<key>`` a metadata value as JSON) expiring after the idle timeout;
``all`` and ``u:<user>`` sorted sets of session ids scored by last activity (µs); ``owners``
(session id -> user) to find a victim's user; ``clock`` the last time handed out, so times
are strictly increasing. Time comes from Redis ``TIME`` inside the scripts: one clock for
every replica. The scripts compute the key of an evicted session's user, so this store needs
a single Redis (not a cluster).
"""

from __future__ import annotations

import hashlib
from functools import cache
from importlib import resources
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from app.data.sessions.models import StoredSession
from app.data.sessions.store import CreateResult
from app.errors import StateBackendError, StateBackendUnavailableError
from app.state.redis import check_bytes_client
from app.state.scripts import LuaScript

__all__ = ["RedisSessionStore", "session_script"]

CLEANUP_BATCH = 1000


@cache
def session_script(name: str) -> LuaScript:
    """``app/data/sessions/<name>.lua`` with its SHA1 (read once per process)."""
    source = resources.files("app.data.sessions").joinpath(f"{name}.lua").read_text("utf-8")
    sha = hashlib.sha1(source.encode("utf-8"), usedforsecurity=False).hexdigest()
    return LuaScript(f"sessions/{name}", source, sha)


def _parse(session_id: str, flat: list[bytes]) -> StoredSession:
    """An ``HGETALL`` reply (field, value, ...) as a StoredSession. One pass comparing bytes,
    with no intermediate dict: this runs on every ``get_session``, right after the reply,
    when the CPU's caches are cold (the ``data`` benchmark's session row)."""
    user: str | None = None
    created = active = -1
    fields: dict[str, str] = {}
    items = iter(flat)
    for key in items:
        value = next(items)
        if key == b"a":
            active = int(value)
        elif key == b"u":
            user = value.decode()
        elif key == b"c":
            created = int(value)
        else:
            fields[key[2:].decode()] = value.decode()  # the metadata fields are m:<key>
    if user is None or created < 0 or active < 0:
        raise StateBackendError(
            f"session {session_id!r} is stored without its user, creation or activity time "
            "(fields u, c, a); another program wrote or damaged it"
        )
    return StoredSession(session_id, user, created, active, fields)


def _pairs(fields: dict[str, str]) -> list[str]:
    return [item for pair in fields.items() for item in pair]


class RedisSessionStore:
    """Sessions in Redis under ``namespace`` (shared by every replica using it), on a client
    whose replies are bytes (``decode_responses=False``, as the state backend's)."""

    def __init__(self, redis: Redis, *, namespace: str) -> None:
        check_bytes_client(redis, "session replies are parsed as bytes")
        prefix = f"{namespace}:sm:"
        self._redis = redis
        self.namespace = namespace
        self._all = prefix + "all"
        self._owners = prefix + "owners"
        self._clock = prefix + "clock"
        self._session_prefix = prefix + "s:"
        self._user_prefix = prefix + "u:"
        self._create = session_script("create")
        self._touch = session_script("touch")
        self._delete = session_script("delete")
        self._list = session_script("list")
        self._cleanup = session_script("cleanup")

    async def _run(self, script: LuaScript, keys: list[str], *args: Any) -> Any:
        try:
            return await script.run(self._redis, len(keys), *keys, *args)
        except (RedisConnectionError, RedisTimeoutError) as exc:
            raise StateBackendUnavailableError(
                f"Redis did not answer script {script.name} for namespace {self.namespace!r}: {exc}"
            ) from exc
        except RedisError as exc:
            raise StateBackendError(
                f"Redis refused script {script.name} for namespace {self.namespace!r}: {exc}"
            ) from exc

    async def create(
        self,
        session_id: str,
        user_id: str,
        fields: dict[str, str],
        *,
        timeout_us: int,
        max_sessions: int,
        max_per_user: int | None,
        reject: bool,
    ) -> CreateResult:
        reply = await self._run(
            self._create,
            [
                self._all,
                self._owners,
                self._user_prefix + user_id,
                self._session_prefix + session_id,
                self._clock,
            ],
            timeout_us,
            -(-timeout_us // 1000),
            max_sessions,
            max_per_user or 0,
            1 if reject else 0,
            session_id,
            user_id,
            self._session_prefix,
            self._user_prefix,
            *_pairs(fields),
        )
        if reply[0] == b"refused":
            return CreateResult(None, refused_by=reply[1].decode())
        now = int(reply[1])
        stored = StoredSession(session_id, user_id, now, now, dict(fields))
        return CreateResult(stored, tuple(victim.decode() for victim in reply[2:]))

    async def touch(
        self, session_id: str, changes: dict[str, str], *, timeout_us: int
    ) -> StoredSession | None:
        # The hot path of get_session: EVALSHA sent by execute_command, below redis-py's
        # evalsha wrappers and our helper layers (the ``data`` benchmark compares it with a
        # raw EVALSHA of the same script).
        script = self._touch
        args: tuple[Any, ...] = (
            self._session_prefix + session_id,
            self._all,
            self._clock,
            -(-timeout_us // 1000),
            self._user_prefix,
            session_id,
        )
        if changes:
            args += tuple(_pairs(changes))
        try:
            try:
                reply = await self._redis.execute_command(  # type: ignore[no-untyped-call]
                    "EVALSHA", script.sha, 3, *args
                )
            except NoScriptError:
                reply = await script.load_and_run(self._redis, 3, *args)
        except (RedisConnectionError, RedisTimeoutError) as exc:
            raise StateBackendUnavailableError(
                f"Redis did not answer script {script.name} for namespace {self.namespace!r}: {exc}"
            ) from exc
        except RedisError as exc:
            raise StateBackendError(
                f"Redis refused script {script.name} for session {session_id!r} in namespace "
                f"{self.namespace!r}: {exc}"
            ) from exc
        return None if reply is None else _parse(session_id, reply)

    async def peek(self, session_id: str, *, timeout_us: int) -> StoredSession | None:
        # One HGETALL: a missing hash is an expired or deleted session (Redis expires it).
        try:
            flat = await self._redis.execute_command(  # type: ignore[no-untyped-call]
                "HGETALL", self._session_prefix + session_id
            )
        except (RedisConnectionError, RedisTimeoutError) as exc:
            raise StateBackendUnavailableError(f"Redis did not answer HGETALL: {exc}") from exc
        if not flat:
            return None
        if isinstance(flat, dict):
            flat = [item for pair in flat.items() for item in pair]
        return _parse(session_id, flat)

    async def delete(self, session_id: str, *, timeout_us: int) -> bool:
        live = await self._run(
            self._delete,
            [self._session_prefix + session_id, self._all, self._owners],
            self._user_prefix,
            session_id,
        )
        return bool(live)

    async def list_user(self, user_id: str, *, timeout_us: int) -> list[StoredSession]:
        reply = await self._run(
            self._list, [self._user_prefix + user_id], timeout_us, self._session_prefix
        )
        return [_parse(reply[i].decode(), reply[i + 1]) for i in range(0, len(reply), 2)]

    async def cleanup(self, *, timeout_us: int) -> int:
        removed = 0
        while True:
            batch = int(
                await self._run(
                    self._cleanup,
                    [self._all, self._owners],
                    timeout_us,
                    self._session_prefix,
                    self._user_prefix,
                    CLEANUP_BATCH,
                )
            )
            removed += batch
            if batch < CLEANUP_BATCH:
                return removed

    async def ping(self) -> bool:
        try:
            return bool(await self._redis.ping())
        except (RedisConnectionError, RedisTimeoutError) as exc:
            raise StateBackendUnavailableError(f"Redis did not answer PING: {exc}") from exc
