"""``EntityStore``: the write path (one change = entity row + one event) and entity reads.

Single changes run as one statement each (``app.entities.sql``): a create is one round trip,
an update or delete a read and one round trip. ``apply`` writes many changes in one
transaction. After every commit the store calls its commit listeners (the relay wakes up on
them: a ``NOTIFY`` inside the transaction would serialise commits).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import pydantic
import pydantic_core
import structlog
from pydantic import BaseModel

from app.entities import sql
from app.entities.cursor import decode_cursor, encode_cursor
from app.entities.declaration import EntityType
from app.entities.records import (
    Change,
    ChangeContext,
    Create,
    Delete,
    StoredEvent,
    Update,
    Written,
    current_context,
)
from app.entities.registry import EntityRegistry
from app.entities.sql import Connection
from app.errors import (
    ConcurrencyError,
    EntityNotFoundError,
    HasChildrenError,
    InvalidCursorError,
    InvalidEntityError,
    InvalidListingError,
    MissingParentError,
)

__all__ = ["MAX_PAGE", "EntityPage", "EntityStore"]

log = structlog.get_logger(__name__)

MAX_PAGE = 500
# Entity and event ids come from uuid4 (the OS's generator): they are stored and must stay
# unique even if something seeds the ``random`` module (test frameworks do, process-wide).
# An update without If-Match re-reads and retries when another writer got in between.
UNCONDITIONAL_RETRIES = 20
CHILDREN_NAMED = 10


def _json(value: Any) -> str:
    return pydantic_core.to_json(value).decode()


@dataclass(frozen=True)
class EntityPage:
    """A page of entities and the cursor of the next page (``None`` at the end)."""

    items: list[BaseModel]
    next_cursor: str | None


@dataclass(slots=True)
class _Pending:
    """An event to insert with the batch's last statement."""

    entity: EntityType
    entity_id: UUID
    version: int
    event_type: str
    payload: dict[str, Any]
    state: BaseModel
    deleted: bool = False
    created_at: datetime | None = None


class EntityStore:
    """Entities of the registered types on an asyncpg pool."""

    def __init__(self, pool: asyncpg.Pool, registry: EntityRegistry) -> None:
        self._pool = pool
        self.registry = registry
        self._listeners: list[Callable[[], None]] = []

    def add_commit_listener(self, listener: Callable[[], None]) -> None:
        """Call ``listener()`` after every commit that recorded events."""
        self._listeners.append(listener)

    def remove_commit_listener(self, listener: Callable[[], None]) -> None:
        self._listeners.remove(listener)

    def _committed(self) -> None:
        for listener in self._listeners:
            listener()

    # -- validation -----------------------------------------------------------------------

    def _validate(self, entity: EntityType, fields: Mapping[str, Any]) -> BaseModel:
        # One C-speed encode finds a NUL (JSON writes it as \u0000); the walk names the field.
        encoded = pydantic_core.to_json(fields, fallback=str)
        where = _nul_in(fields, "") if b"\\u0000" in encoded else None
        if where is not None:
            raise InvalidEntityError(
                f"invalid {entity.name}: {where or '(body)'} holds a NUL character (\\u0000), "
                "which Postgres text and JSON cannot store"
            )
        try:
            return entity.fields.model_validate(dict(fields))
        except pydantic.ValidationError as exc:
            reasons = "; ".join(
                f"{'.'.join(str(p) for p in error['loc']) or '(body)'}: {error['msg']}"
                for error in exc.errors(include_url=False)
            )
            raise InvalidEntityError(f"invalid {entity.name}: {reasons}") from None

    def _state_of(self, entity: EntityType, row: asyncpg.Record) -> BaseModel:
        return entity.fields.model_validate(
            {c.name: c.from_db(row[c.name]) for c in entity.columns}
        )

    def _out(
        self, entity: EntityType, row: Mapping[str, Any] | asyncpg.Record, state: BaseModel
    ) -> BaseModel:
        return entity.out_model.model_validate(
            {
                **dict(state),
                "id": row["id"],
                "version": row["version"],
                "created_at": row["created_at"],
                "updated_at": row["updated_at"],
            }
        )

    def _row_out(self, entity: EntityType, row: asyncpg.Record) -> BaseModel:
        return self._out(entity, row, self._state_of(entity, row))

    @staticmethod
    def _field_values(entity: EntityType, state: BaseModel) -> list[Any]:
        return [c.to_db(getattr(state, c.name)) for c in entity.columns]

    @staticmethod
    def _metadata(context: ChangeContext | None) -> str:
        return _json((context or current_context()).metadata())

    # -- single changes -------------------------------------------------------------------

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
        state = self._validate(entity, fields)
        entity_id = entity_id or uuid4()
        event_id = uuid4()
        now = datetime.now(UTC)
        payload = {"state": entity.state_json(state)}
        metadata = self._metadata(context)
        async with self._pool.acquire() as conn:
            position = await conn.fetchval(
                sql.create_sql(entity),
                entity_id,
                event_id,
                entity.event_type("created"),
                _json(payload),
                metadata,
                now,
                *self._field_values(entity, state),
            )
            if position is None:
                await self._raise_missing_parent(conn, entity, state)
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
            _loads(metadata),
            now,
        )
        return Written(self._out(entity, row, state), event)

    async def _raise_missing_parent(
        self, conn: Connection, entity: EntityType, state: BaseModel
    ) -> None:
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
        metadata = self._metadata(context)
        async with self._pool.acquire() as conn:
            for _attempt in range(UNCONDITIONAL_RETRIES):
                row = await conn.fetchrow(sql.select_sql(entity), entity_id)
                if row is None:
                    raise EntityNotFoundError(entity.name, entity_id)
                if expected_version is not None and row["version"] != expected_version:
                    raise ConcurrencyError(entity.name, entity_id, expected_version, row["version"])
                old = self._state_of(entity, row)
                new = self._validate(entity, fields if replace else {**dict(old), **fields})
                pending = _change(entity, entity_id, row["version"], old, new)
                if pending is None:
                    return Written(self._out(entity, row, old), None)
                now = datetime.now(UTC)
                event_id = uuid4()
                check_parents = any(f in pending.payload["changes"] for f in entity.parents)
                position = await conn.fetchval(
                    sql.update_sql(entity, check_parents=check_parents),
                    entity_id,
                    event_id,
                    pending.event_type,
                    _json(pending.payload),
                    metadata,
                    now,
                    row["version"],
                    *self._field_values(entity, new),
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
                        _loads(metadata),
                        now,
                    )
                    return Written(self._out(entity, out_row, new), event)
                await self._explain_failed_update(conn, entity, entity_id, new, check_parents)
                if expected_version is not None:
                    current = await self._current_version(conn, entity, entity_id)
                    raise ConcurrencyError(entity.name, entity_id, expected_version, current)
        raise ConcurrencyError(entity.name, entity_id, -1, -1)  # pragma: no cover - 20 losses

    async def _explain_failed_update(
        self,
        conn: Connection,
        entity: EntityType,
        entity_id: UUID,
        new: BaseModel,
        check_parents: bool,
    ) -> None:
        """A failed compare-and-set: the entity is gone, or a new parent is missing."""
        if await self._current_version(conn, entity, entity_id) is None:
            raise EntityNotFoundError(entity.name, entity_id)
        if check_parents:
            for field, table in entity.parent_tables.items():
                parent_id = getattr(new, field)
                query = f"SELECT 1 FROM {table} WHERE id = $1 AND deleted_at IS NULL"  # noqa: S608
                if not await conn.fetchval(query, parent_id):
                    raise MissingParentError(field, entity.parents[field], parent_id)

    @staticmethod
    async def _current_version(conn: Connection, entity: EntityType, entity_id: UUID) -> Any:
        query = f"SELECT version FROM {entity.table} WHERE id = $1 AND deleted_at IS NULL"  # noqa: S608
        version = await conn.fetchval(query, entity_id)
        if version is None:
            raise EntityNotFoundError(entity.name, entity_id)
        return version

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
        metadata = self._metadata(context)
        async with self._pool.acquire() as conn, conn.transaction():
            # The row lock makes a concurrent child insert (which share-locks the parent)
            # finish first; the children query after it, a new snapshot, then sees it.
            row = await conn.fetchrow(sql.lock_row_sql(entity), entity_id)
            if row is None:
                raise EntityNotFoundError(entity.name, entity_id)
            if expected_version is not None and row["version"] != expected_version:
                raise ConcurrencyError(entity.name, entity_id, expected_version, row["version"])
            await self._refuse_with_children(conn, entity, entity_id)
            state = self._state_of(entity, row)
            now = datetime.now(UTC)
            event_id = uuid4()
            payload = {"state": entity.state_json(state)}
            position = await conn.fetchval(
                sql.delete_sql(entity),
                entity_id,
                event_id,
                entity.event_type("deleted"),
                _json(payload),
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
            _loads(metadata),
            now,
        )
        out_row = {**dict(row), "version": version, "updated_at": now}
        return Written(self._out(entity, out_row, state), event, deleted=True)

    async def _refuse_with_children(
        self, conn: Connection, entity: EntityType, entity_id: UUID
    ) -> None:
        children: dict[str, list[str]] = {}
        for child, field in self.registry.children(entity):
            query = (
                f"SELECT id FROM {child.table} WHERE {field} = $1 AND deleted_at IS NULL "  # noqa: S608
                f"ORDER BY created_at, id LIMIT {CHILDREN_NAMED}"
            )
            ids = [str(r["id"]) for r in await conn.fetch(query, entity_id)]
            if ids:
                children[child.table] = ids
        if children:
            raise HasChildrenError(entity.name, entity_id, children)

    # -- batches --------------------------------------------------------------------------

    async def apply(
        self, changes: Sequence[Change], *, context: ChangeContext | None = None
    ) -> list[Written]:
        """Write ``changes`` in order in ONE transaction: all of them with their events, or
        none (the first error is raised). Later changes see earlier ones (a goal may name
        an agent created before it in the same batch)."""
        if not changes:
            return []
        metadata = self._metadata(context)
        now = datetime.now(UTC)
        first = changes[0]
        if isinstance(first, Create) and not self.registry.get(first.entity).parents:
            run = _run_of_creates(changes, 0)
            if len(run) == len(changes):
                return await self._create_many_at_once(run, metadata, now)
        pending: list[_Pending] = []
        results: list[Written | _Pending] = []
        async with self._pool.acquire() as conn, conn.transaction():
            index = 0
            while index < len(changes):
                change = changes[index]
                if isinstance(change, Create):
                    run = _run_of_creates(changes, index)
                    made = await self._create_many(conn, run, now)
                    pending.extend(made)
                    results.extend(made)
                    index += len(run)
                    continue
                outcome = await self._apply_one(conn, change, now)
                if isinstance(outcome, _Pending):
                    pending.append(outcome)
                results.append(outcome)
                index += 1
            positions = await self._insert_events(conn, pending, metadata, now)
        self._committed()
        meta = _loads(metadata)
        return [
            _written(item, positions, meta, now) if isinstance(item, _Pending) else item
            for item in results
        ]

    async def _create_many_at_once(
        self, run: Sequence[Create], metadata: str, now: datetime
    ) -> list[Written]:
        """A batch of creates of one type without parents: one statement (see
        ``sql.create_many_with_events_sql``); the same rows and events as the general path."""
        entity = self.registry.get(run[0].entity)
        states = [self._validate(entity, change.fields) for change in run]
        ids = [change.id or uuid4() for change in run]
        pending = [
            _Pending(
                entity, i, 1, entity.event_type("created"), {"state": entity.state_json(st)}, st
            )
            for i, st in zip(ids, states, strict=True)
        ]
        event_ids = [uuid4() for _ in run]
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                sql.create_many_with_events_sql(entity),
                ids,
                now,
                *([c.to_db(getattr(s, c.name)) for s in states] for c in entity.columns),
                event_ids,
                entity.event_type("created"),
                [_json(p.payload) for p in pending],
                metadata,
            )
        self._committed()
        by_event = {r["event_id"]: r["global_position"] for r in rows}
        positions = {
            (entity.name, p.entity_id, 1): (event_id, by_event[event_id])
            for p, event_id in zip(pending, event_ids, strict=True)
        }
        meta = _loads(metadata)
        return [_written(p, positions, meta, now) for p in pending]

    async def _create_many(
        self, conn: Connection, run: Sequence[Create], now: datetime
    ) -> list[_Pending]:
        entity = self.registry.get(run[0].entity)
        states = [self._validate(entity, change.fields) for change in run]
        for field, table in entity.parent_tables.items():
            wanted = {getattr(state, field) for state in states}
            live = {r["id"] for r in await conn.fetch(sql.live_ids_sql(table), list(wanted))}
            for state in states:
                if getattr(state, field) not in live:
                    raise MissingParentError(field, entity.parents[field], getattr(state, field))
        ids = [change.id or uuid4() for change in run]
        columns = [[c.to_db(getattr(s, c.name)) for s in states] for c in entity.columns]
        await conn.execute(sql.create_many_sql(entity), ids, [now] * len(run), *columns)
        return [
            _Pending(
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
    ) -> Written | _Pending:
        entity = self.registry.get(change.entity)
        row = await conn.fetchrow(sql.lock_row_sql(entity), change.id)
        if row is None:
            raise EntityNotFoundError(entity.name, change.id)
        if change.expected_version is not None and row["version"] != change.expected_version:
            raise ConcurrencyError(entity.name, change.id, change.expected_version, row["version"])
        old = self._state_of(entity, row)
        if isinstance(change, Delete):
            await self._refuse_with_children(conn, entity, change.id)
            new = old
            payload: dict[str, Any] = {"state": entity.state_json(old)}
            item = _Pending(
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
            new = self._validate(entity, fields)
            found = _change(entity, change.id, row["version"], old, new)
            if found is None:
                return Written(self._out(entity, row, old), None)
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
            *self._field_values(entity, new),
        )
        item.created_at = row["created_at"]
        return item

    @staticmethod
    async def _insert_events(
        conn: Connection, pending: list[_Pending], metadata: str, now: datetime
    ) -> dict[tuple[str, UUID, int], tuple[UUID, int]]:
        """The batch's last statement: the events lock, then every event (D4)."""
        if not pending:
            return {}
        event_ids = [uuid4() for _ in pending]
        rows = await conn.fetch(
            sql.batch_events_sql(),
            event_ids,
            [p.event_type for p in pending],
            [p.entity.name for p in pending],
            [p.entity_id for p in pending],
            [p.version for p in pending],
            [_json(p.payload) for p in pending],
            [metadata] * len(pending),
            [now] * len(pending),
        )
        by_event = {r["event_id"]: r["global_position"] for r in rows}
        return {
            (p.entity.name, p.entity_id, p.version): (event_id, by_event[event_id])
            for p, event_id in zip(pending, event_ids, strict=True)
        }

    # -- reads ----------------------------------------------------------------------------

    async def get(self, entity_name: str, entity_id: UUID) -> BaseModel:
        """The live entity; ``EntityNotFoundError`` if there is none (or it was deleted)."""
        entity = self.registry.get(entity_name)
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow(sql.select_sql(entity), entity_id)
        if row is None:
            raise EntityNotFoundError(entity.name, entity_id)
        return self._row_out(entity, row)

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
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(query, *args)
        more = len(rows) > limit
        rows = rows[:limit]
        items = [self._row_out(entity, row) for row in rows]
        next_cursor = None
        if more:
            last = rows[-1]
            next_cursor = encode_cursor(kind, [last["created_at"].isoformat(), str(last["id"])])
        return EntityPage(items, next_cursor)


def _nul_in(value: Any, path: str) -> str | None:
    """The path of the first string (or key) holding a NUL character, else ``None``."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, Mapping):
        for key, item in value.items():
            inner = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and "\x00" in key:
                return inner
            found = _nul_in(item, inner)
            if found is not None:
                return found
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found = _nul_in(item, f"{path}[{index}]")
            if found is not None:
                return found
    return None


def _loads(text: str) -> dict[str, Any]:
    value: dict[str, Any] = pydantic_core.from_json(text)
    return value


def _change(
    entity: EntityType, entity_id: UUID, version: int, old: BaseModel, new: BaseModel
) -> _Pending | None:
    """The update event for ``old`` -> ``new`` (``None`` when nothing changed)."""
    before, after = entity.state_json(old), entity.state_json(new)
    changes = {k: (before[k], after[k]) for k in after if before.get(k) != after[k]}
    if not changes:
        return None
    payload = {"state": after, "changes": {k: list(v) for k, v in changes.items()}}
    return _Pending(entity, entity_id, version + 1, entity.update_event_type(changes), payload, new)


def _run_of_creates(changes: Sequence[Change], start: int) -> list[Create]:
    """The consecutive creates of one entity type from ``start`` (written in one INSERT)."""
    first = changes[start]
    assert isinstance(first, Create)
    run = [first]
    for change in changes[start + 1 :]:
        if not isinstance(change, Create) or change.entity != first.entity:
            break
        run.append(change)
    return run


def _written(
    item: _Pending,
    positions: dict[tuple[str, UUID, int], tuple[UUID, int]],
    metadata: dict[str, Any],
    now: datetime,
) -> Written:
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

    def build() -> BaseModel:
        values: dict[str, Any] = {
            **dict(item.state),
            "id": item.entity_id,
            "version": item.version,
            "created_at": item.created_at or now,
            "updated_at": now,
        }
        # The fields were validated on the way in; the system columns are ours.
        return item.entity.out_model.model_construct(None, **values)

    return Written(build, event, deleted=item.deleted)
