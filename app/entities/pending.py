"""Events worked out before they are stored: ``Pending`` holds one until its insert (a batch
inserts all of its events with its last statement), ``update_event`` is the event of an
update, and ``written`` the result of a change once its event has a position.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any, TypeAlias
from uuid import UUID

from pydantic import BaseModel

from app.entities.declaration import EntityType
from app.entities.records import StoredEvent, Written

__all__ = ["Pending", "Positions", "entity_model", "update_event", "written"]

# (entity type, entity id, version) -> (event id, global position) of the inserted events.
Positions: TypeAlias = dict[tuple[str, UUID, int], tuple[UUID, int]]


@dataclass(slots=True)
class Pending:
    """An event to insert with the batch's last statement."""

    entity: EntityType
    entity_id: UUID
    version: int
    event_type: str
    payload: dict[str, Any]
    state: BaseModel
    deleted: bool = False
    created_at: datetime | None = None


def update_event(
    entity: EntityType, entity_id: UUID, version: int, old: BaseModel, new: BaseModel
) -> Pending | None:
    """The update event for ``old`` -> ``new`` (``None`` when nothing changed)."""
    before, after = entity.state_json(old), entity.state_json(new)
    changes = {k: (before[k], after[k]) for k in after if before.get(k) != after[k]}
    if not changes:
        return None
    payload = {"state": after, "changes": {k: list(v) for k, v in changes.items()}}
    return Pending(entity, entity_id, version + 1, entity.update_event_type(changes), payload, new)


def written(
    item: Pending, positions: Positions, metadata: dict[str, Any], now: datetime
) -> Written:
    """The result of ``item`` once its event is stored (the entity model is built lazily)."""
    event_id, position = positions[(item.entity.name, item.entity_id, item.version)]
    event = StoredEvent(
        position,
        event_id,
        item.event_type,
        item.entity.name,
        item.entity_id,
        item.version,
        item.payload,
        metadata,
        now,
    )

    build = partial(
        entity_model,
        item.entity,
        item.state,
        item.entity_id,
        item.version,
        created_at=item.created_at or now,
        updated_at=now,
    )
    return Written(build, event, deleted=item.deleted)


def entity_model(
    entity: EntityType,
    state: BaseModel,
    entity_id: UUID,
    version: int,
    *,
    created_at: datetime,
    updated_at: datetime,
) -> BaseModel:
    """The response model of an entity whose fields were validated on the way in (the
    system columns are ours): built without validating again."""
    values: dict[str, Any] = {
        **dict(state),
        "id": entity_id,
        "version": version,
        "created_at": created_at,
        "updated_at": updated_at,
    }
    return entity.out_model.model_construct(None, **values)
