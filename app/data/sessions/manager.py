"""``SessionManager``: sessions with a sliding idle timeout and caps, on memory or Redis.

The manager validates and shapes; the store (:mod:`app.data.sessions.store`) does each change
in one atomic step, so the behaviour is the same on both (contract E, SM1-SM6, in
``docs/contracts/sessions.md``). ``initialize()`` starts a task that runs
:meth:`SessionManager.cleanup_expired_sessions` every ``cleanup_interval`` seconds;
``shutdown()`` stops it.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Callable
from typing import Any

import structlog

from app.data.errors import SessionLimitError, SessionNotFoundError
from app.data.sessions.memory_store import InMemorySessionStore
from app.data.sessions.models import (
    SessionConfig,
    SessionData,
    check_session_id,
    check_user_id,
    encode_fields,
)
from app.data.sessions.redis_store import RedisSessionStore
from app.data.sessions.store import SessionStore
from app.errors import BackendClosedError, ConfigurationError
from app.state import InMemoryStateBackend, RedisStateBackend, StateBackend

__all__ = ["SessionManager", "session_store_for"]

log = structlog.get_logger(__name__)

SESSION_ID_BYTES = 24  # 192 random bits (SM1 asks for at least 128)


def session_store_for(
    backend: StateBackend, *, clock: Callable[[], float] | None = None
) -> SessionStore:
    """The session store matching a state backend: Redis beside a Redis backend (same client
    and namespace), in memory beside the in-memory one."""
    if isinstance(backend, RedisStateBackend):
        return RedisSessionStore(backend.client, namespace=backend.namespace)
    if isinstance(backend, InMemoryStateBackend):
        return InMemorySessionStore(clock=clock)
    raise ConfigurationError(
        f"no session store for a {type(backend).__name__} state backend; override the "
        "container's session_manager as well, or pass a SessionManager(store=...)"
    )


class SessionManager:
    """Create, read (sliding), update, list and expire user sessions.

    ``SessionManager(config)`` keeps sessions in this process; the container gives it the
    store matching its state backend (``backend=``), Redis in distributed mode.
    """

    def __init__(
        self,
        config: SessionConfig | None = None,
        *,
        backend: StateBackend | None = None,
        store: SessionStore | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._config = config if config is not None else SessionConfig()
        self._timeout_us = self._config.timeout_us
        if store is not None and backend is not None:
            raise ConfigurationError("pass a state backend or a session store, not both")
        if store is None:
            store = (
                session_store_for(backend, clock=clock)
                if backend is not None
                else InMemorySessionStore(clock=clock)
            )
        self.store = store
        self._cleanup_task: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def config(self) -> SessionConfig:
        """How sessions live (fixed for the manager's life)."""
        return self._config

    # -- lifecycle ---------------------------------------------------------------------------

    async def initialize(self, *, run_cleanup: bool = True) -> None:
        """Check the store answers and (by default) start the periodic cleanup."""
        self._check_open()
        await self.store.ping()
        if run_cleanup and self._cleanup_task is None:
            self._cleanup_task = asyncio.create_task(
                self._cleanup_forever(), name="sessions.cleanup"
            )

    async def shutdown(self) -> None:
        """Stop the periodic cleanup; later calls raise BackendClosedError. Idempotent."""
        self._closed = True
        task, self._cleanup_task = self._cleanup_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def ping(self) -> bool:
        """True if the store answers (readiness)."""
        self._check_open()
        return await self.store.ping()

    async def _cleanup_forever(self) -> None:
        while True:
            await asyncio.sleep(self.config.cleanup_interval)
            try:
                removed = await self.cleanup_expired_sessions()
            except Exception:
                # The next period retries; a Redis blip must not end the cleanup for good.
                log.exception("sessions.cleanup_failed")
            else:
                if removed:
                    log.info("sessions.cleaned", removed=removed)

    def _check_open(self) -> None:
        if self._closed:
            raise BackendClosedError("SessionManager is shut down; no call is allowed after it")

    # -- sessions ----------------------------------------------------------------------------

    async def create_session(
        self, user_id: str, metadata: dict[str, Any] | None = None
    ) -> SessionData:
        """A new session for ``user_id``, making room under the caps (SM1, SM3)."""
        self._check_open()
        user = check_user_id(user_id)
        fields = encode_fields(metadata, self.config.max_metadata_bytes, "metadata")
        config = self.config
        result = await self.store.create(
            secrets.token_urlsafe(SESSION_ID_BYTES),
            user,
            fields,
            timeout_us=self._timeout_us,
            max_sessions=config.max_sessions,
            max_per_user=config.max_sessions_per_user,
            reject=config.policy == "reject",
        )
        if result.session is None:
            if result.refused_by == "user":
                raise SessionLimitError(f"user {user!r}", config.max_sessions_per_user or 0)
            raise SessionLimitError("the store", config.max_sessions)
        if result.evicted:
            log.info("sessions.evicted", count=len(result.evicted), for_user=user)
        return result.session.to_data()

    async def get_session(self, session_id: str) -> SessionData | None:
        """The live session (a copy), its idle timer restarted; None if missing or idle (SM2)."""
        self._check_open()
        stored = await self.store.touch(
            check_session_id(session_id), {}, timeout_us=self._timeout_us
        )
        return None if stored is None else stored.to_data()

    async def peek_session(self, session_id: str) -> SessionData | None:
        """The live session without restarting its idle timer (for exports and admin reads)."""
        self._check_open()
        stored = await self.store.peek(check_session_id(session_id), timeout_us=self._timeout_us)
        return None if stored is None else stored.to_data()

    async def update_session(self, session_id: str, changes: dict[str, Any]) -> SessionData:
        """Merge ``changes`` into the session's metadata and restart its idle timer (SM4)."""
        self._check_open()
        sid = check_session_id(session_id)
        fields = encode_fields(changes, self.config.max_metadata_bytes, "changes")
        stored = await self.store.touch(sid, fields, timeout_us=self._timeout_us)
        if stored is None:
            raise SessionNotFoundError(sid)
        return stored.to_data()

    async def delete_session(self, session_id: str) -> bool:
        """Remove the session; True iff it was live."""
        self._check_open()
        return await self.store.delete(check_session_id(session_id), timeout_us=self._timeout_us)

    async def list_user_sessions(self, user_id: str) -> list[SessionData]:
        """The user's live sessions, most recently active first (SM5)."""
        self._check_open()
        stored = await self.store.list_user(check_user_id(user_id), timeout_us=self._timeout_us)
        return [session.to_data() for session in stored]

    async def cleanup_expired_sessions(self) -> int:
        """Remove every idle session; how many were removed (SM5)."""
        self._check_open()
        return await self.store.cleanup(timeout_us=self._timeout_us)
