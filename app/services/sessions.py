"""Session use cases: put, get, delete."""

from __future__ import annotations

from typing import Any

from dependency_injector.wiring import Provide, inject

from app.state import StateBackend
from containers.application import Container

__all__ = ["delete_session", "get_session", "put_session"]


@inject
async def put_session(
    session_id: str,
    data: dict[str, Any],
    ttl_seconds: float | None = None,
    *,
    state: StateBackend = Provide[Container.state_backend],
) -> None:
    """Store ``data`` (a JSON object) under ``session_id``, replacing value and TTL."""
    await state.set_session(session_id, data, ttl_seconds)


@inject
async def get_session(
    session_id: str,
    *,
    touch: bool = False,
    state: StateBackend = Provide[Container.state_backend],
) -> dict[str, Any] | None:
    """The session's data, or ``None``; ``touch`` refreshes its TTL."""
    return await state.get_session(session_id, touch=touch)


@inject
async def delete_session(
    session_id: str, *, state: StateBackend = Provide[Container.state_backend]
) -> bool:
    """Delete a session; ``True`` if it existed."""
    return await state.delete_session(session_id)
