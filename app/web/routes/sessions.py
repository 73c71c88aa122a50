"""``/v1/sessions``: put, get, delete."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Response

from app.services import sessions as service
from app.web.data_schemas import only_query
from app.web.errors import ERROR_RESPONSES, ApiError, ErrorBody
from app.web.json_route import JSONRoute
from app.web.params import StateKey
from app.web.schemas import SessionIn, SessionOut

__all__ = ["router"]

router = APIRouter(
    prefix="/v1/sessions", tags=["sessions"], responses=ERROR_RESPONSES, route_class=JSONRoute
)
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "no such session"}
}


@router.put("/{session_id}")
async def put(session_id: StateKey, body: SessionIn) -> SessionOut:
    """Store the session's data, replacing data and TTL (no TTL: never expires)."""
    await service.put_session(session_id, body.data, body.ttl_seconds)
    return SessionOut(id=session_id, data=body.data)


@router.get("/{session_id}", responses=NOT_FOUND, dependencies=[Depends(only_query("touch"))])
async def get(session_id: StateKey, touch: bool = False) -> SessionOut:
    """The session's data; ``touch=true`` refreshes its TTL."""
    data = await service.get_session(session_id, touch=touch)
    if data is None:
        raise ApiError(404, "not_found", f"no session {session_id!r}")
    return SessionOut(id=session_id, data=data)


@router.delete("/{session_id}", status_code=204, responses=NOT_FOUND)
async def delete(session_id: StateKey) -> Response:
    """Delete the session."""
    if not await service.delete_session(session_id):
        raise ApiError(404, "not_found", f"no session {session_id!r}")
    return Response(status_code=204)
