"""``/api/events``: the recorded entity events (D10), one event by id, and the per-agent goal
statistics the projection keeps (``/api/agents/{id}/stats``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel

from app.entities.event_log import MAX_EVENT_PAGE, MAX_OFFSET, EventQuery
from app.services import entities as service
from app.web.errors import ERROR_RESPONSES, ErrorBody
from app.web.json_route import JSONRoute
from app.web.routes.entities import no_unknown_query

__all__ = ["router"]

router = APIRouter(
    prefix="/api",
    responses=ERROR_RESPONSES,
    route_class=JSONRoute,
    dependencies=[Depends(no_unknown_query)],
)
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorBody, "description": "none"}}
Word = Annotated[str | None, Query(min_length=1, max_length=255)]
Position = Annotated[int | None, Query(ge=0, le=2**63 - 1)]


class EventOut(BaseModel):
    """A recorded event (the same object the Redis sink publishes)."""

    event_id: UUID
    event_type: str
    entity_type: str
    entity_id: UUID
    entity_version: int
    global_position: int
    payload: dict[str, Any]
    metadata: dict[str, Any]
    timestamp: datetime


class EventPageOut(BaseModel):
    items: list[EventOut]
    next_cursor: str | None


class AgentStats(BaseModel):
    agent_id: UUID
    goals_by_status: dict[str, int]
    total_goals: int


@router.get("/events", tags=["events"], response_model=EventPageOut)
async def list_events(
    *,
    event_type: Word = None,
    entity_type: Word = None,
    entity_id: Annotated[UUID | None, Query(description="needs entity_type")] = None,
    after: Annotated[Position, Query(description="only events after this position")] = None,
    before: Annotated[Position, Query(description="only events before this position")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_EVENT_PAGE)] = 100,
    order: Literal["asc", "desc"] = "asc",
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="prefer cursor")] = 0,
) -> Response:
    """Events in position order (``order=desc``: newest first), filtered; ``next_cursor``
    continues the listing (keyset: the same cost at any depth)."""
    query = EventQuery(
        event_type=event_type,
        entity_type=entity_type,
        entity_id=entity_id,
        after=after,
        before=before,
        limit=limit,
        order=order,
        cursor=cursor,
        offset=offset,
    )
    # The page's JSON is made by Postgres and sent as it is: decoding each event and encoding
    # it again (and validating it against the response model) was most of the route's time
    # (benchmark case entities, listing through the app).
    body = await service.list_entity_events_json(query)
    return Response(body, media_type="application/json")


@router.get("/events/{event_id}", tags=["events"], responses=NOT_FOUND, response_model=EventOut)
async def get_event(event_id: UUID) -> Response:
    """One event by its id."""
    body = await service.get_entity_event_json(event_id)
    return Response(body, media_type="application/json")


@router.get("/agents/{agent_id}/stats", tags=["agents"], responses=NOT_FOUND)
async def agent_stats(agent_id: UUID) -> AgentStats:
    """The agent's live goals counted by status (kept by a projection: it may trail the
    newest events by the projection's lag)."""
    counts = await service.agent_goal_stats(agent_id)
    return AgentStats(agent_id=agent_id, goals_by_status=counts, total_goals=sum(counts.values()))
