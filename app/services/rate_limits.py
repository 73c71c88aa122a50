"""Rate limit use case: a sliding-window check for one caller."""

from __future__ import annotations

from dependency_injector.wiring import Provide, inject

from app.state import StateBackend
from containers.application import Container

__all__ = ["check_rate_limit"]


@inject
async def check_rate_limit(
    caller: str,
    limit: int,
    window_seconds: float,
    *,
    scope: str = "api",
    state: StateBackend = Provide[Container.state_backend],
) -> tuple[bool, int]:
    """``(allowed, remaining)`` for one more call by ``caller`` in the trailing window."""
    return await state.rate_limit_check(caller, limit, window_seconds, scope=scope)
