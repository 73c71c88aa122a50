"""Why a write was refused, asked of the database once it was: a parent that is not live
(``MissingParentError``), live children (``HasChildrenError``, naming some), an entity
deleted or moved on under an update (``EntityNotFoundError``).

The write statements themselves only say "no row written" (``app.entities.sql``); these
queries run after it, on the same connection, to name the reason.
"""

from __future__ import annotations

from typing import Any, NoReturn
from uuid import UUID

from pydantic import BaseModel

from app.entities.declaration import EntityType
from app.entities.registry import EntityRegistry
from app.entities.sql import Connection
from app.errors import EntityNotFoundError, HasChildrenError, MissingParentError

__all__ = [
    "CHILDREN_NAMED",
    "current_version",
    "explain_failed_update",
    "raise_missing_parent",
    "refuse_with_children",
]

CHILDREN_NAMED = 10


async def raise_missing_parent(conn: Connection, entity: EntityType, state: BaseModel) -> NoReturn:
    """A create wrote no row: name the parent that is missing."""
    for field, table in entity.parent_tables.items():
        parent_id = getattr(state, field)
        found = await conn.fetchval(
            f"SELECT 1 FROM {table} WHERE id = $1 AND deleted_at IS NULL",  # noqa: S608
            parent_id,
        )
        if not found:
            raise MissingParentError(field, entity.parents[field], parent_id)
    # Only a missing parent stops a create's insert; it came back between the two reads.
    raise MissingParentError(
        ", ".join(entity.parents), "/".join(entity.parents.values()), "(deleted meanwhile)"
    )


async def explain_failed_update(
    conn: Connection,
    entity: EntityType,
    entity_id: UUID,
    new: BaseModel,
    check_parents: bool,
) -> None:
    """A failed compare-and-set: the entity is gone, or a new parent is missing."""
    if await current_version(conn, entity, entity_id) is None:
        raise EntityNotFoundError(entity.name, entity_id)
    if check_parents:
        for field, table in entity.parent_tables.items():
            parent_id = getattr(new, field)
            query = f"SELECT 1 FROM {table} WHERE id = $1 AND deleted_at IS NULL"  # noqa: S608
            if not await conn.fetchval(query, parent_id):
                raise MissingParentError(field, entity.parents[field], parent_id)


async def current_version(conn: Connection, entity: EntityType, entity_id: UUID) -> Any:
    """The live entity's version; ``EntityNotFoundError`` if there is none."""
    query = f"SELECT version FROM {entity.table} WHERE id = $1 AND deleted_at IS NULL"  # noqa: S608
    version = await conn.fetchval(query, entity_id)
    if version is None:
        raise EntityNotFoundError(entity.name, entity_id)
    return version


async def refuse_with_children(
    conn: Connection, registry: EntityRegistry, entity: EntityType, entity_id: UUID
) -> None:
    """``HasChildrenError`` naming up to ``CHILDREN_NAMED`` live children of each type."""
    children: dict[str, list[str]] = {}
    for child, field in registry.children(entity):
        query = (
            f"SELECT id FROM {child.table} WHERE {field} = $1 AND deleted_at IS NULL "  # noqa: S608
            f"ORDER BY created_at, id LIMIT {CHILDREN_NAMED}"
        )
        ids = [str(r["id"]) for r in await conn.fetch(query, entity_id)]
        if ids:
            children[child.table] = ids
    if children:
        raise HasChildrenError(entity.name, entity_id, children)
