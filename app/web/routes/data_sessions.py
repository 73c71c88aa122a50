"""``/api/sessions``: the SessionManager's sessions (sliding idle timeout, caps)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Response

from app.data.sessions.models import MAX_ID_CHARS
from app.services import data as service
from app.web.data_schemas import SessionCreate, SessionOut, UserId, only_query
from app.web.errors import ERROR_RESPONSES, ApiError, ErrorBody
from app.web.json_route import JSONRoute

__all__ = ["router"]

router = APIRouter(
    prefix="/api/sessions",
    tags=["sessions (manager)"],
    responses=ERROR_RESPONSES,
    route_class=JSONRoute,
)
SessionId = Annotated[str, Path(min_length=1, max_length=MAX_ID_CHARS)]
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "no live session with this id"}
}
LIMIT: dict[int | str, dict[str, Any]] = {
    409: {"model": ErrorBody, "description": "the session cap is reached (policy reject)"}
}


@router.post("", status_code=201, responses=LIMIT)
async def create(body: SessionCreate) -> SessionOut:
    """Create a session for ``user_id``; at the cap the least recently active one is evicted
    (or, with SESSIONS__POLICY=reject, 409)."""
    return SessionOut.of(await service.create_session(body.user_id, body.metadata))


@router.get("", dependencies=[Depends(only_query("user_id"))])
async def list_for_user(user_id: Annotated[UserId, Query()]) -> list[SessionOut]:
    """The user's live sessions, most recently active first."""
    return [SessionOut.of(s) for s in await service.list_user_sessions(user_id)]


@router.get("/{session_id}", responses=NOT_FOUND, dependencies=[Depends(only_query())])
async def get(session_id: SessionId) -> SessionOut:
    """The live session; reading it restarts its idle timer."""
    session = await service.get_session(session_id)
    if session is None:
        raise ApiError(404, "not_found", f"no live session {session_id!r}")
    return SessionOut.of(session)


@router.delete("/{session_id}", status_code=204, responses=NOT_FOUND)
async def delete(session_id: SessionId) -> Response:
    """End the session."""
    if not await service.delete_session(session_id):
        raise ApiError(404, "not_found", f"no live session {session_id!r}")
    return Response(status_code=204)
