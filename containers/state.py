"""The state layer: in-memory or Redis state, switched by ``DEPLOYMENT_MODE``."""

from __future__ import annotations

from collections.abc import AsyncIterator

import redis.asyncio as aioredis
from dependency_injector import containers, providers

from app.state import InMemoryStateBackend, RedisStateBackend
from settings import Settings, StateSettings

__all__ = ["StateContainer", "memory_state", "redis_state"]


async def memory_state(settings: StateSettings) -> AsyncIterator[InMemoryStateBackend]:
    """An in-memory backend with its expiry sweep running until stop."""
    backend = InMemoryStateBackend(
        namespace=settings.namespace, max_value_bytes=settings.max_value_bytes
    )
    await backend.start(settings.sweep_interval_s)
    try:
        yield backend
    finally:
        await backend.close()


async def redis_state(
    redis: aioredis.Redis, settings: StateSettings
) -> AsyncIterator[RedisStateBackend]:
    """A Redis backend on the shared client (the client itself is closed by its own resource)."""
    backend = RedisStateBackend(
        redis, namespace=settings.namespace, max_value_bytes=settings.max_value_bytes
    )
    try:
        yield backend
    finally:
        await backend.close()


class StateContainer(containers.DeclarativeContainer):
    """``backend`` selects the memory or the Redis state backend by ``DEPLOYMENT_MODE``."""

    settings = providers.Dependency(instance_of=Settings)
    redis = providers.Dependency(instance_of=aioredis.Redis)

    memory = providers.Resource(memory_state, settings.provided.state)
    redis_backend = providers.Resource(redis_state, redis, settings.provided.state)
    backend = providers.Selector(
        settings.provided.deployment_mode,
        single_node=memory,
        distributed=redis_backend,
    )
