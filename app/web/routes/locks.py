"""``/v1/locks``: acquire, extend, release; the owner is always the authenticated caller."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from app.services import locks as service
from app.web.errors import ERROR_RESPONSES, ApiError, ErrorBody
from app.web.json_route import JSONRoute
from app.web.params import LockKey
from app.web.schemas import LockRequest, LockState

__all__ = ["router"]

router = APIRouter(
    prefix="/v1/locks", tags=["locks"], responses=ERROR_RESPONSES, route_class=JSONRoute
)
CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"model": ErrorBody, "description": "held by another owner, or not held"}
}


def _caller(request: Request) -> str:
    caller: str = request.state.caller
    return caller


# Registered before "/{key}" so that "name:extend" is not taken for a key.
@router.post("/{key}:extend", responses=CONFLICT)
async def extend(key: LockKey, body: LockRequest, request: Request) -> LockState:
    """Renew your lease on ``key`` to ``ttl_seconds`` from now."""
    owner = _caller(request)
    if not await service.extend_lock(key, owner, body.ttl_seconds):
        raise ApiError(409, "lock_not_held", f"you do not hold the lock {key!r}")
    return LockState(key=key, owner=owner, ttl_seconds=body.ttl_seconds)


@router.post("/{key}", responses=CONFLICT)
async def acquire(key: LockKey, body: LockRequest, request: Request) -> LockState:
    """Take the lease on ``key`` if it is free (never waits); 409 if someone holds it."""
    owner = _caller(request)
    if not await service.acquire_lock(key, owner, body.ttl_seconds):
        raise ApiError(409, "lock_held", f"the lock {key!r} is held")
    return LockState(key=key, owner=owner, ttl_seconds=body.ttl_seconds)


@router.delete("/{key}", status_code=204, responses=CONFLICT)
async def release(key: LockKey, request: Request) -> Response:
    """Release your lease on ``key``; 409 if you do not hold it."""
    if not await service.release_lock(key, _caller(request)):
        raise ApiError(409, "lock_not_held", f"you do not hold the lock {key!r}")
    return Response(status_code=204)
