"""Single changes: create, update and delete one entity, each with its one event.

A create is one statement (one round trip); an update or a delete reads the row first, then
writes row and event in one statement (``app.entities.sql``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from app.entities import sql
from app.entities.ids import new_ids
from app.entities.pending import update_event
from app.entities.records import ChangeContext, StoredEvent, Written
from app.entities.refusals import (
    current_version,
    explain_failed_update,
    raise_missing_parent,
    refuse_with_children,
)
from app.entities.states import (
    field_values,
    from_json,
    metadata_json,
    out,
    state_of,
    to_json,
    validate,
)
from app.entities.store_core import StoreCore
from app.errors import ConcurrencyError, EntityNotFoundError

__all__ = ["UNCONDITIONAL_RETRIES", "SingleWrites"]

# An update without If-Match re-reads and retries when another writer got in between.
UNCONDITIONAL_RETRIES = 20


class SingleWrites(StoreCore):
    """``create``, ``update`` and ``delete`` of ``EntityStore``."""

    async def create(
        self,
        entity_name: str,
        fields: Mapping[str, Any],
        *,
        entity_id: UUID | None = None,
        context: ChangeContext | None = None,
    ) -> Written:
        """Create an entity and its ``{entity}_created`` event in one statement (D1)."""
        entity = self.registry.get(entity_name)
        state = validate(entity, fields)
        fresh_id, event_id = new_ids(2)
        entity_id = entity_id or fresh_id
        now = datetime.now(UTC)
        payload = {"state": entity.state_json(state)}
        metadata = metadata_json(context)
        async with self._connection(f"create {entity.name}") as conn:
            position = await conn.fetchval(
                sql.create_sql(entity),
                entity_id,
                event_id,
                entity.event_type("created"),
                to_json(payload),
                metadata,
                now,
                *field_values(entity, state),
            )
            if position is None:
                await raise_missing_parent(conn, entity, state)
        self._committed()
        row = {"id": entity_id, "version": 1, "created_at": now, "updated_at": now}
        event = StoredEvent(
            position,
            event_id,
            entity.event_type("created"),
            entity.name,
            entity_id,
            1,
            payload,
            from_json(metadata),
            now,
        )
        return Written(out(entity, row, state), event)

    async def update(
        self,
        entity_name: str,
        entity_id: UUID,
        fields: Mapping[str, Any],
        *,
        expected_version: int | None = None,
        replace: bool = False,
        context: ChangeContext | None = None,
    ) -> Written:
        """Change fields (merge, or ``replace`` all) with a compare-and-set on the version:
        with ``expected_version`` a moved-on entity is a ``ConcurrencyError`` (D2); without
        it, the store re-reads and tries again. An update that changes nothing records no
        event and returns the entity as it is."""
        entity = self.registry.get(entity_name)
        metadata = metadata_json(context)
        async with self._connection(f"update {entity.name}") as conn:
            for _attempt in range(UNCONDITIONAL_RETRIES):
                row = await conn.fetchrow(sql.select_sql(entity), entity_id)
                if row is None:
                    raise EntityNotFoundError(entity.name, entity_id)
                if expected_version is not None and row["version"] != expected_version:
                    raise ConcurrencyError(entity.name, entity_id, expected_version, row["version"])
                old = state_of(entity, row)
                new = validate(entity, fields if replace else {**dict(old), **fields})
                pending = update_event(entity, entity_id, row["version"], old, new)
                if pending is None:
                    return Written(out(entity, row, old), None)
                now = datetime.now(UTC)
                (event_id,) = new_ids(1)
                check_parents = any(f in pending.payload["changes"] for f in entity.parents)
                position = await conn.fetchval(
                    sql.update_sql(entity, check_parents=check_parents),
                    entity_id,
                    event_id,
                    pending.event_type,
                    to_json(pending.payload),
                    metadata,
                    now,
                    row["version"],
                    *field_values(entity, new),
                )
                if position is not None:
                    self._committed()
                    version = row["version"] + 1
                    out_row = {**dict(row), "version": version, "updated_at": now}
                    event = StoredEvent(
                        position,
                        event_id,
                        pending.event_type,
                        entity.name,
                        entity_id,
                        version,
                        pending.payload,
                        from_json(metadata),
                        now,
                    )
                    return Written(out(entity, out_row, new), event)
                await explain_failed_update(conn, entity, entity_id, new, check_parents)
                if expected_version is not None:
                    current = await current_version(conn, entity, entity_id)
                    raise ConcurrencyError(entity.name, entity_id, expected_version, current)
        raise ConcurrencyError(entity.name, entity_id, -1, -1)  # pragma: no cover - 20 losses

    async def delete(
        self,
        entity_name: str,
        entity_id: UUID,
        *,
        expected_version: int | None = None,
        context: ChangeContext | None = None,
    ) -> Written:
        """Tombstone the entity and record ``{entity}_deleted`` (D5). A parent that still has
        live children is refused with ``HasChildrenError`` naming them."""
        entity = self.registry.get(entity_name)
        metadata = metadata_json(context)
        async with self._connection(f"delete {entity.name}") as conn, conn.transaction():
            # The row lock makes a concurrent child insert (which share-locks the parent)
            # finish first; the children query after it, a new snapshot, then sees it.
            row = await conn.fetchrow(sql.lock_row_sql(entity), entity_id)
            if row is None:
                raise EntityNotFoundError(entity.name, entity_id)
            if expected_version is not None and row["version"] != expected_version:
                raise ConcurrencyError(entity.name, entity_id, expected_version, row["version"])
            await refuse_with_children(conn, self.registry, entity, entity_id)
            state = state_of(entity, row)
            now = datetime.now(UTC)
            (event_id,) = new_ids(1)
            payload = {"state": entity.state_json(state)}
            position = await conn.fetchval(
                sql.delete_sql(entity),
                entity_id,
                event_id,
                entity.event_type("deleted"),
                to_json(payload),
                metadata,
                now,
                row["version"],
            )
        self._committed()
        version = row["version"] + 1
        event = StoredEvent(
            position,
            event_id,
            entity.event_type("deleted"),
            entity.name,
            entity_id,
            version,
            payload,
            from_json(metadata),
            now,
        )
        out_row = {**dict(row), "version": version, "updated_at": now}
        return Written(out(entity, out_row, state), event, deleted=True)
