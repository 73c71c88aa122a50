"""The original module's ``ConnectionManager`` and ``RedisClient``, thin over the state backends.

Code written against the original runs with only its import changed. Key layout and semantics
are the state backends' (contract A); what the original did differently is noted per method.
"""

from __future__ import annotations

from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import redis.asyncio as aioredis
from pydantic import SecretStr

from app.backends.redis import redis_client
from app.state import InMemoryStateBackend, RedisStateBackend, StateBackend
from settings import DeploymentMode, RedisSettings, Settings

__all__ = ["ConnectionManager", "RedisClient"]


class ConnectionManager:
    """``get_state_backend()``: memory in single_node, Redis in distributed (made once)."""

    def __init__(self, settings: Settings, logger: Any = None) -> None:
        self.settings = settings
        self._logger = logger
        self._backend: StateBackend | None = None
        self._stack = AsyncExitStack()

    async def get_state_backend(self) -> StateBackend:
        if self._backend is not None:
            return self._backend
        state = self.settings.state
        backend: StateBackend
        if self.settings.deployment_mode is DeploymentMode.DISTRIBUTED:
            client = await self._stack.enter_async_context(
                asynccontextmanager(redis_client)(self.settings.redis)
            )
            backend = RedisStateBackend(
                client, namespace=state.namespace, max_value_bytes=state.max_value_bytes
            )
        else:
            memory = InMemoryStateBackend(
                namespace=state.namespace, max_value_bytes=state.max_value_bytes
            )
            await memory.start(state.sweep_interval_s)
            backend = memory
        self._stack.push_async_callback(backend.close)
        self._backend = backend
        return backend

    async def close(self) -> None:
        """Close the backend and its Redis client; idempotent."""
        self._backend = None
        await self._stack.aclose()


class RedisClient:
    """The original Redis helper: the state primitives on a ``RedisStateBackend``.

    Calls connect on first use, as the original did. ``release_lock(key)`` without an owner
    releases a lock this client acquired (under the owner it used), like the original.
    """

    def __init__(
        self,
        redis_url: str = "redis://localhost:6379",
        logger: Any = None,
        *,
        namespace: str = "datalayer",
    ) -> None:
        self.redis_url = redis_url
        self.namespace = namespace
        self._logger = logger
        self.redis: aioredis.Redis | None = None
        self._backend: RedisStateBackend | None = None
        self._stack = AsyncExitStack()
        self._owners: dict[str, str | None] = {}

    async def connect(self) -> None:
        if self._backend is not None:
            return
        settings = RedisSettings(url=SecretStr(self.redis_url))
        self.redis = await self._stack.enter_async_context(
            asynccontextmanager(redis_client)(settings)
        )
        self._backend = RedisStateBackend(self.redis, namespace=self.namespace)
        self._stack.push_async_callback(self._backend.close)

    async def disconnect(self) -> None:
        self._backend = self.redis = None
        await self._stack.aclose()

    async def close(self) -> None:
        await self.disconnect()

    async def _state(self) -> RedisStateBackend:
        if self._backend is None:
            await self.connect()
        assert self._backend is not None
        return self._backend

    async def rate_limit_check(
        self, user_id: str, limit: int, window_seconds: float = 60
    ) -> tuple[bool, int]:
        return await (await self._state()).rate_limit_check(user_id, limit, window_seconds)

    async def acquire_lock(
        self, key: str, ttl_seconds: float = 30, owner: str | None = None
    ) -> bool:
        acquired = await (await self._state()).acquire_lock(key, ttl_seconds, owner)
        if acquired:
            self._owners[key] = owner
        return acquired

    async def release_lock(self, key: str, owner: str | None = None) -> bool:
        if owner is None:
            owner = self._owners.get(key)
        released = await (await self._state()).release_lock(key, owner)
        if released:
            self._owners.pop(key, None)
        return released

    async def cache_embedding(self, text_hash: str, vector: list[float], ttl: float = 3600) -> None:
        await (await self._state()).cache_embedding(text_hash, vector, ttl)

    async def get_cached_embedding(self, text_hash: str) -> list[float] | None:
        return await (await self._state()).get_cached_embedding(text_hash)

    async def set_value(self, key: str, value: Any, ttl: float | None = None) -> None:
        await (await self._state()).set_value(key, value, ttl)

    async def get_value(self, key: str) -> Any | None:
        return await (await self._state()).get_value(key)

    async def delete(self, key: str) -> bool:
        return await (await self._state()).delete(key)

    async def increment(self, key: str, amount: int = 1) -> int:
        return await (await self._state()).increment(key, amount)

    async def get_stats(self) -> dict[str, Any]:
        """Redis' command and keyspace counters (``INFO stats``)."""
        await self._state()
        assert self.redis is not None
        info = await self.redis.info("stats")
        keys = (
            "total_commands_processed",
            "total_connections_received",
            "keyspace_hits",
            "keyspace_misses",
        )
        return {key: info.get(key, 0) for key in keys}
