"""Event-sourced entities (CONTRACTS section D): current-state tables with a version, one
immutable event per change in the ``events`` table (also the outbox), the relay that
publishes events to the sinks, and projections.
"""

from __future__ import annotations

from app.entities.catalog import CATALOG
from app.entities.declaration import EntityFields, EntityType, Parent
from app.entities.records import (
    Change,
    ChangeContext,
    Create,
    Delete,
    StoredEvent,
    Update,
    Written,
    change_context,
    current_context,
)
from app.entities.registry import EntityRegistry
from app.entities.store import EntityPage, EntityStore

__all__ = [
    "CATALOG",
    "Change",
    "ChangeContext",
    "Create",
    "Delete",
    "EntityFields",
    "EntityPage",
    "EntityRegistry",
    "EntityStore",
    "EntityType",
    "Parent",
    "StoredEvent",
    "Update",
    "Written",
    "change_context",
    "current_context",
]
