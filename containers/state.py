"""The state layer: in-memory or Redis state, switched by ``DEPLOYMENT_MODE``."""

from __future__ import annotations

from collections.abc import AsyncIterator

import redis.asyncio as aioredis
from dependency_injector import containers, providers

from app.state import InMemoryStateBackend, RedisStateBackend
from containers.declarations import Managed, ping_method
from settings import DeploymentMode, Settings, StateSettings

__all__ = ["StateContainer", "memory_state", "redis_state"]


def _state_address(settings: Settings) -> str:
    if settings.deployment_mode is DeploymentMode.DISTRIBUTED:
        return settings.redis.address()
    return "memory"


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
    backend_lifecycle = Managed("backend", name="state", ping=ping_method, address=_state_address)
