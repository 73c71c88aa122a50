"""Entity use cases: create, change, delete, read and list entities; append many changes in
one transaction; list and read events; the per-agent goal statistics; rebuild a projection.

No HTTP types: a worker or a script calls these alike (``change_context`` or the ``context``
argument records who made the change, D11).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID

from dependency_injector.wiring import Provide, inject
from pydantic import BaseModel

from app.entities.event_log import (
    EventPage,
    EventQuery,
    get_event,
    get_event_json,
    list_events,
    list_events_json,
)
from app.entities.projections import rebuild
from app.entities.records import Change, ChangeContext, StoredEvent, Written
from app.entities.runtime import Entities
from app.entities.store import EntityPage
from containers.application import Container

__all__ = [
    "agent_goal_stats",
    "append_changes",
    "create_entity",
    "delete_entity",
    "get_entity",
    "get_entity_event",
    "get_entity_event_json",
    "list_entities",
    "list_entity_events",
    "list_entity_events_json",
    "rebuild_projections",
    "update_entity",
]


@inject
async def create_entity(
    entity: str,
    fields: Mapping[str, Any],
    *,
    entity_id: UUID | None = None,
    context: ChangeContext | None = None,
    entities: Entities = Provide[Container.entities],
) -> Written:
    """Create an entity of type ``entity`` (``"agent"``) and its ``_created`` event."""
    return await entities.store.create(entity, fields, entity_id=entity_id, context=context)


@inject
async def update_entity(
    entity: str,
    entity_id: UUID,
    fields: Mapping[str, Any],
    *,
    expected_version: int | None = None,
    replace: bool = False,
    context: ChangeContext | None = None,
    entities: Entities = Provide[Container.entities],
) -> Written:
    """Merge ``fields`` into the entity (``replace``: replace them all); conditional on
    ``expected_version`` when given (``ConcurrencyError`` if it moved on)."""
    return await entities.store.update(
        entity,
        entity_id,
        fields,
        expected_version=expected_version,
        replace=replace,
        context=context,
    )


@inject
async def delete_entity(
    entity: str,
    entity_id: UUID,
    *,
    expected_version: int | None = None,
    context: ChangeContext | None = None,
    entities: Entities = Provide[Container.entities],
) -> Written:
    """Delete (tombstone) the entity; refused while it has live children."""
    return await entities.store.delete(
        entity, entity_id, expected_version=expected_version, context=context
    )


@inject
async def append_changes(
    changes: Sequence[Change],
    *,
    context: ChangeContext | None = None,
    entities: Entities = Provide[Container.entities],
) -> list[Written]:
    """Write ``changes`` (``Create``/``Update``/``Delete``) in one transaction, in order."""
    return await entities.store.apply(changes, context=context)


@inject
async def get_entity(
    entity: str, entity_id: UUID, *, entities: Entities = Provide[Container.entities]
) -> BaseModel:
    """The live entity (``EntityNotFoundError`` if none)."""
    return await entities.store.get(entity, entity_id)


@inject
async def list_entities(
    entity: str,
    *,
    limit: int = 50,
    cursor: str | None = None,
    parent: tuple[str, UUID] | None = None,
    entities: Entities = Provide[Container.entities],
) -> EntityPage:
    """A page of live entities, oldest first; ``parent`` = (field, id) for one parent's."""
    return await entities.store.list(entity, limit=limit, cursor=cursor, parent=parent)


@inject
async def list_entity_events(
    query: EventQuery, *, entities: Entities = Provide[Container.entities]
) -> EventPage:
    """A page of events matching ``query`` (D10)."""
    return await list_events(entities.pool, query)


@inject
async def list_entity_events_json(
    query: EventQuery, *, entities: Entities = Provide[Container.entities]
) -> bytes:
    """The same page as ``list_entity_events``, as the API's JSON body (made by Postgres)."""
    return await list_events_json(entities.pool, query)


@inject
async def get_entity_event_json(
    event_id: UUID, *, entities: Entities = Provide[Container.entities]
) -> bytes:
    """One event as JSON (``EventNotFoundError`` if none)."""
    return await get_event_json(entities.pool, event_id)


@inject
async def get_entity_event(
    event_id: UUID, *, entities: Entities = Provide[Container.entities]
) -> StoredEvent:
    """One event by its id (``EventNotFoundError`` if none)."""
    return await get_event(entities.pool, event_id)


@inject
async def agent_goal_stats(
    agent_id: UUID, *, entities: Entities = Provide[Container.entities]
) -> dict[str, int]:
    """The agent's live goals counted by status (the ``agent_goal_stats`` projection)."""
    await entities.store.get("agent", agent_id)  # 404 for an unknown agent
    return await entities.goal_stats.read(entities.pool, agent_id)


@inject
async def rebuild_projections(*, entities: Entities = Provide[Container.entities]) -> None:
    """Rebuild every projection from position 0 (its runner replays all events)."""
    for runner in entities.projections:
        await rebuild(entities.pool, runner.projection)
        runner.wake()
