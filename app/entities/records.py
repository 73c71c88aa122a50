"""What the entity store takes and gives: changes, stored events, results, the change context."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel

__all__ = [
    "Change",
    "ChangeContext",
    "Create",
    "Delete",
    "StoredEvent",
    "Update",
    "Written",
    "change_context",
    "current_context",
]


@dataclass(frozen=True)
class ChangeContext:
    """Who made a change and on whose behalf (D11): copied into each event's metadata."""

    request_id: str | None = None
    caller: str | None = None
    correlation_id: str | None = None

    def metadata(self) -> dict[str, str]:
        values = {
            "request_id": self.request_id,
            "caller": self.caller,
            "correlation_id": self.correlation_id,
        }
        return {key: value for key, value in values.items() if value is not None}


_NO_CONTEXT = ChangeContext()
_context: ContextVar[ChangeContext | None] = ContextVar("entity_change_context", default=None)


def current_context() -> ChangeContext:
    """The context of the change being made (set by the API per request)."""
    return _context.get() or _NO_CONTEXT


@contextmanager
def change_context(context: ChangeContext) -> Iterator[ChangeContext]:
    """Make ``context`` the one recorded by changes made inside the block."""
    token = _context.set(context)
    try:
        yield context
    finally:
        _context.reset(token)


@dataclass(frozen=True)
class Create:
    """Create an entity of type ``entity`` (``"agent"``) with ``fields``; ``id`` is generated
    unless given."""

    entity: str
    fields: Mapping[str, Any]
    id: UUID | None = None


@dataclass(frozen=True)
class Update:
    """Change fields of an entity; ``replace`` replaces all fields (PUT) instead of merging
    (PATCH). ``expected_version``: fail with ``ConcurrencyError`` if the entity moved on."""

    entity: str
    id: UUID
    fields: Mapping[str, Any]
    expected_version: int | None = None
    replace: bool = False


@dataclass(frozen=True)
class Delete:
    """Delete an entity (a tombstone and a ``{entity}_deleted`` event, D5)."""

    entity: str
    id: UUID
    expected_version: int | None = None


Change = Create | Update | Delete


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """One row of the events table."""

    global_position: int
    event_id: UUID
    event_type: str
    entity_type: str
    entity_id: UUID
    entity_version: int
    payload: dict[str, Any]
    metadata: dict[str, Any]
    created_at: datetime

    def as_json(self) -> dict[str, Any]:
        """The event as the API and the Redis sink send it (D8)."""
        return {
            "event_id": str(self.event_id),
            "event_type": self.event_type,
            "entity_type": self.entity_type,
            "entity_id": str(self.entity_id),
            "entity_version": self.entity_version,
            "global_position": self.global_position,
            "payload": self.payload,
            "metadata": self.metadata,
            "timestamp": self.created_at.astimezone(UTC).isoformat(timespec="microseconds"),
        }


class Written:
    """The result of one change: the entity as stored now and the event recorded for it
    (``None`` for an update that changed nothing: no event is written for it).

    ``entity`` may be given as a function that makes it: a batch builds each response model
    only if it is read (most batch callers read the events alone).
    """

    __slots__ = ("_entity", "deleted", "event")

    def __init__(
        self,
        entity: BaseModel | Callable[[], BaseModel],
        event: StoredEvent | None,
        deleted: bool = False,
    ) -> None:
        self._entity = entity
        self.event = event
        self.deleted = deleted

    @property
    def entity(self) -> BaseModel:
        if not isinstance(self._entity, BaseModel):
            self._entity = self._entity()
        return self._entity

    def __repr__(self) -> str:
        return f"Written(entity={self.entity!r}, event={self.event!r}, deleted={self.deleted})"
