"""Lock (lease) use cases: acquire, extend, release, always on behalf of an explicit owner."""

from __future__ import annotations

from dependency_injector.wiring import Provide, inject

from app.state import StateBackend
from containers.application import Container

__all__ = ["acquire_lock", "extend_lock", "release_lock"]


@inject
async def acquire_lock(
    key: str,
    owner: str,
    ttl_seconds: float,
    *,
    state: StateBackend = Provide[Container.state_backend],
) -> bool:
    """Take the lease if it is free; never blocks. ``False`` if someone holds it."""
    return await state.acquire_lock(key, ttl_seconds, owner)


@inject
async def extend_lock(
    key: str,
    owner: str,
    ttl_seconds: float,
    *,
    state: StateBackend = Provide[Container.state_backend],
) -> bool:
    """Renew the lease to ``ttl_seconds`` from now; only for its current owner."""
    return await state.extend_lock(key, ttl_seconds, owner)


@inject
async def release_lock(
    key: str, owner: str, *, state: StateBackend = Provide[Container.state_backend]
) -> bool:
    """Release the lease; only its current owner can. ``False`` otherwise."""
    return await state.release_lock(key, owner)
