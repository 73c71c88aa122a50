"""Batches: ``apply`` writes many changes in ONE transaction, in order, all or nothing.

Entity rows are written first (a run of consecutive creates of one type as one INSERT), then
one last statement takes the events lock and inserts every event (D4). A batch made only of
creates of one type without parents is a single statement (``_create_many_at_once``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any

from app.entities import sql
from app.entities.ids import new_ids
from app.entities.pending import Pending, Positions, entity_model, update_event, written
from app.entities.records import (
    Change,
    ChangeContext,
    Create,
    Delete,
    StoredEvent,
    Update,
    Written,
)
from app.entities.refusals import refuse_with_children
from app.entities.sql import Connection
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
from app.errors import ConcurrencyError, EntityNotFoundError, MissingParentError

__all__ = ["BatchWrites", "run_of_creates"]


class BatchWrites(StoreCore):
    """``apply`` of ``EntityStore``."""

    async def apply(
        self, changes: Sequence[Change], *, context: ChangeContext | None = None
    ) -> list[Written]:
        """Write ``changes`` in order in ONE transaction: all of them with their events, or
        none (the first error is raised). Later changes see earlier ones (a goal may name
        an agent created before it in the same batch)."""
        if not changes:
            return []
        metadata = metadata_json(context)
        now = datetime.now(UTC)
        first = changes[0]
        if isinstance(first, Create) and not self.registry.get(first.entity).parents:
            run = run_of_creates(changes, 0)
            if len(run) == len(changes):
                return await self._create_many_at_once(run, metadata, now)
        pending: list[Pending] = []
        results: list[Written | Pending] = []
        async with self._connection("apply") as conn, conn.transaction():
            index = 0
            while index < len(changes):
                change = changes[index]
                if isinstance(change, Create):
                    run = run_of_creates(changes, index)
                    made = await self._create_many(conn, run, now)
                    pending.extend(made)
                    results.extend(made)
                    index += len(run)
                    continue
                outcome = await self._apply_one(conn, change, now)
                if isinstance(outcome, Pending):
                    pending.append(outcome)
                results.append(outcome)
                index += 1
            positions = await self._insert_events(conn, pending, metadata, now)
        self._committed()
        meta = from_json(metadata)
        return [
            written(item, positions, meta, now) if isinstance(item, Pending) else item
            for item in results
        ]

    async def _create_many_at_once(
        self, run: Sequence[Create], metadata: str, now: datetime
    ) -> list[Written]:
        """A batch of creates of one type without parents: one statement (see
        ``sql.create_many_with_events_sql``); the same rows and events as the general path.
        The events are made directly (no ``Pending``): every object a change leaves alive
        until the batch ends is work for the collector (the ``entities`` benchmark)."""
        entity = self.registry.get(run[0].entity)
        event_type = entity.event_type("created")
        states = [validate(entity, change.fields) for change in run]
        fresh = iter(new_ids(2 * len(run)))
        ids = [change.id or next(fresh) for change in run]
        event_ids = [next(fresh) for _ in run]
        payloads = [{"state": entity.state_json(state)} for state in states]
        async with self._connection("apply") as conn:
            rows = await conn.fetch(
                sql.create_many_with_events_sql(entity),
                ids,
                now,
                *([c.to_db(getattr(s, c.name)) for s in states] for c in entity.columns),
                event_ids,
                event_type,
                [to_json(payload) for payload in payloads],
                metadata,
            )
        self._committed()
        position = {r["event_id"]: r["global_position"] for r in rows}
        meta = from_json(metadata)
        name = entity.name
        return [
            Written(
                partial(entity_model, entity, state, entity_id, 1, created_at=now, updated_at=now),
                StoredEvent(
                    position[event_id], event_id, event_type, name, entity_id, 1, payload,
                    meta, now,
                ),
            )
            for entity_id, event_id, state, payload in zip(
                ids, event_ids, states, payloads, strict=True
            )
        ]  # fmt: skip

    async def _create_many(
        self, conn: Connection, run: Sequence[Create], now: datetime
    ) -> list[Pending]:
        entity = self.registry.get(run[0].entity)
        states = [validate(entity, change.fields) for change in run]
        for field, table in entity.parent_tables.items():
            wanted = {getattr(state, field) for state in states}
            live = {r["id"] for r in await conn.fetch(sql.live_ids_sql(table), list(wanted))}
            for state in states:
                if getattr(state, field) not in live:
                    raise MissingParentError(field, entity.parents[field], getattr(state, field))
        fresh = iter(new_ids(len(run)))
        ids = [change.id or next(fresh) for change in run]
        columns = [[c.to_db(getattr(s, c.name)) for s in states] for c in entity.columns]
        await conn.execute(sql.create_many_sql(entity), ids, [now] * len(run), *columns)
        return [
            Pending(
                entity,
                entity_id,
                1,
                entity.event_type("created"),
                {"state": entity.state_json(state)},
                state,
            )
            for entity_id, state in zip(ids, states, strict=True)
        ]

    async def _apply_one(
        self, conn: Connection, change: Update | Delete, now: datetime
    ) -> Written | Pending:
        entity = self.registry.get(change.entity)
        row = await conn.fetchrow(sql.lock_row_sql(entity), change.id)
        if row is None:
            raise EntityNotFoundError(entity.name, change.id)
        if change.expected_version is not None and row["version"] != change.expected_version:
            raise ConcurrencyError(entity.name, change.id, change.expected_version, row["version"])
        old = state_of(entity, row)
        if isinstance(change, Delete):
            await refuse_with_children(conn, self.registry, entity, change.id)
            new = old
            payload: dict[str, Any] = {"state": entity.state_json(old)}
            item = Pending(
                entity,
                change.id,
                row["version"] + 1,
                entity.event_type("deleted"),
                payload,
                old,
                True,
            )
        else:
            fields = change.fields if change.replace else {**dict(old), **change.fields}
            new = validate(entity, fields)
            found = update_event(entity, change.id, row["version"], old, new)
            if found is None:
                return Written(out(entity, row, old), None)
            item = found
            for field, table in entity.parent_tables.items():
                if field in item.payload["changes"]:
                    parent_id = getattr(new, field)
                    if not await conn.fetch(sql.live_ids_sql(table), [parent_id]):
                        raise MissingParentError(field, entity.parents[field], parent_id)
        await conn.execute(
            sql.batch_update_sql(entity),
            change.id,
            now,
            item.deleted,
            *field_values(entity, new),
        )
        item.created_at = row["created_at"]
        return item

    @staticmethod
    async def _insert_events(
        conn: Connection, pending: list[Pending], metadata: str, now: datetime
    ) -> Positions:
        """The batch's last statement: the events lock, then every event (D4)."""
        if not pending:
            return {}
        event_ids = new_ids(len(pending))
        rows = await conn.fetch(
            sql.batch_events_sql(),
            event_ids,
            [p.event_type for p in pending],
            [p.entity.name for p in pending],
            [p.entity_id for p in pending],
            [p.version for p in pending],
            [to_json(p.payload) for p in pending],
            [metadata] * len(pending),
            [now] * len(pending),
        )
        by_event = {r["event_id"]: r["global_position"] for r in rows}
        return {
            (p.entity.name, p.entity_id, p.version): (event_id, by_event[event_id])
            for p, event_id in zip(pending, event_ids, strict=True)
        }


def run_of_creates(changes: Sequence[Change], start: int) -> list[Create]:
    """The consecutive creates of one entity type from ``start`` (written in one INSERT)."""
    first = changes[start]
    assert isinstance(first, Create)
    run = [first]
    for change in changes[start + 1 :]:
        if not isinstance(change, Create) or change.entity != first.entity:
            break
        run.append(change)
    return run
