"""Reads: one live entity by id, and keyset pages of live entities (all, or one parent's)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel

from app.entities import sql
from app.entities.cursor import decode_cursor, encode_cursor
from app.entities.states import row_out
from app.entities.store_core import StoreCore
from app.errors import EntityNotFoundError, InvalidCursorError, InvalidListingError

__all__ = ["MAX_PAGE", "EntityPage", "EntityReads"]

MAX_PAGE = 500


@dataclass(frozen=True)
class EntityPage:
    """A page of entities and the cursor of the next page (``None`` at the end)."""

    items: list[BaseModel]
    next_cursor: str | None


class EntityReads(StoreCore):
    """``get`` and ``list`` of ``EntityStore``."""

    async def get(self, entity_name: str, entity_id: UUID) -> BaseModel:
        """The live entity; ``EntityNotFoundError`` if there is none (or it was deleted)."""
        entity = self.registry.get(entity_name)
        async with self._connection(f"get {entity.name}") as conn:
            row = await conn.fetchrow(sql.select_sql(entity), entity_id)
        if row is None:
            raise EntityNotFoundError(entity.name, entity_id)
        return row_out(entity, row)

    async def list(
        self,
        entity_name: str,
        *,
        limit: int = 50,
        cursor: str | None = None,
        parent: tuple[str, UUID] | None = None,
    ) -> EntityPage:
        """Live entities, oldest first, keyset-paged on (created_at, id); ``parent`` =
        (reference field, id) lists the children of one parent."""
        entity = self.registry.get(entity_name)
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidListingError(f"limit must be 1..{MAX_PAGE}, got {limit}")
        kind = entity.table if parent is None else f"{entity.table}.{parent[0]}={parent[1]}"
        args: list[Any] = []
        if parent is not None:
            field, parent_id = parent
            if field not in entity.parents:
                raise InvalidListingError(f"{entity.name} has no parent field {field!r}")
            args.append(parent_id)
        if cursor is not None:
            at, last_id = decode_cursor(kind, cursor, 2)
            try:
                args += [datetime.fromisoformat(at), UUID(last_id)]
            except (TypeError, ValueError) as exc:
                raise InvalidCursorError(f"cursor holds a bad position: {exc}") from None
        args.append(limit + 1)
        query = sql.list_sql(
            entity, None if parent is None else parent[0], after_cursor=cursor is not None
        )
        async with self._connection(f"list {entity.name}") as conn:
            rows = await conn.fetch(query, *args)
        more = len(rows) > limit
        rows = rows[:limit]
        items = [row_out(entity, row) for row in rows]
        next_cursor = None
        if more:
            last = rows[-1]
            next_cursor = encode_cursor(kind, [last["created_at"].isoformat(), str(last["id"])])
        return EntityPage(items, next_cursor)
