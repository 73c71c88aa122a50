"""The SQL of the write path, built once per entity type from its declaration.

A single change is ONE statement, so one round trip and its own transaction::

    WITH written AS (INSERT/UPDATE the entity row ... RETURNING id, version),
         lock AS (SELECT pg_advisory_xact_lock(EVENTS_LOCK) FROM (SELECT count(*) ...)
                  WHERE a row was written)
    INSERT INTO events (...) SELECT nextval(...), ... FROM written, lock

``lock`` reads ``written``, so the entity row is written (and, for an update, its row lock
taken) before the events lock; the event's position is drawn from the sequence only once
the lock is held, and the lock is released by the commit that ends the statement. So
positions become visible in the order they were drawn (D4): no reader tailing
``global_position > last_seen`` can skip one. A failed compare-and-set writes no row, takes no
lock and inserts no event (D1, D2).

A batch runs in one explicit transaction: entity rows first, then one last statement that
takes the lock and inserts every event (``unnest``), then the commit.
"""

from __future__ import annotations

from functools import cache
from typing import TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from app.entities.declaration import EntityType

__all__ = [
    "EVENTS_LOCK_KEY",
    "EVENT_COLUMNS",
    "Connection",
    "batch_events_sql",
    "batch_update_sql",
    "create_many_sql",
    "create_many_with_events_sql",
    "create_sql",
    "delete_sql",
    "list_sql",
    "live_ids_sql",
    "lock_row_sql",
    "select_sql",
    "update_sql",
]

# A connection of our own, or one lent by the pool (the type asyncpg's stubs give it).
Connection: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"

# The transaction-level advisory lock every event insert takes (b"events" as a number).
EVENTS_LOCK_KEY = 0x6576656E7473
EVENT_COLUMNS = (
    "global_position, event_id, event_type, entity_type, entity_id, entity_version, "
    "payload, metadata, created_at"
)
_LOCK = (
    f"lock AS (SELECT pg_advisory_xact_lock({EVENTS_LOCK_KEY}) "
    "FROM (SELECT count(*) AS n FROM written) AS w WHERE w.n > 0)"
)
_SYSTEM = "id, version, created_at, updated_at"


def _event_insert(entity: EntityType) -> str:
    """The final INSERT of a single change: $2 event id, $3 event type, $4 payload,
    $5 metadata, $6 timestamp."""
    return (
        f"INSERT INTO events ({EVENT_COLUMNS}) "
        "SELECT nextval('events_global_position_seq'), $2::uuid, $3::text, "
        f"'{entity.name}', written.id, written.version, $4::jsonb, $5::jsonb, "
        "$6::timestamptz FROM written, lock RETURNING global_position"
    )


def _parent_checks(entity: EntityType, first: int) -> tuple[list[str], str]:
    """CTEs that share-lock each live parent (a concurrent delete of it then waits, and
    sees the child), and the condition that all were found. ``first``: the parameter number
    of the first field."""
    ctes: list[str] = []
    found: list[str] = []
    for index, column in enumerate(entity.columns):
        if column.parent is None:
            continue
        parent_table = entity.parent_tables[column.name]
        cte = f"parent_{column.name}"
        ctes.append(
            f"{cte} AS (SELECT 1 FROM {parent_table} "
            f"WHERE id = ${first + index}::uuid AND deleted_at IS NULL FOR SHARE)"
        )
        found.append(f"EXISTS (SELECT 1 FROM {cte})")
    return ctes, " AND ".join(found)


def _field_params(entity: EntityType, first: int) -> list[str]:
    return [f"${first + i}::{c.sql_type}" for i, c in enumerate(entity.columns)]


@cache
def create_sql(entity: EntityType) -> str:
    """$1 id, $2 event id, $3 event type, $4 payload, $5 metadata, $6 timestamp,
    $7... the fields in declaration order. Returns the position, or no row when a parent
    is missing."""
    first_field = 7
    ctes, parents_found = _parent_checks(entity, first_field)
    columns = ", ".join(c.name for c in entity.columns)
    values = ", ".join(_field_params(entity, first_field))
    where = f" WHERE {parents_found}" if parents_found else ""
    written = (
        f"written AS (INSERT INTO {entity.table} ({_SYSTEM}, {columns}) "
        f"SELECT $1::uuid, 1, $6::timestamptz, $6::timestamptz, {values}{where} "
        "RETURNING id, version)"
    )
    return "WITH " + ", ".join([*ctes, written, _LOCK]) + " " + _event_insert(entity)


@cache
def update_sql(entity: EntityType, *, check_parents: bool) -> str:
    """$1 id, $2 event id, $3 event type, $4 payload, $5 metadata, $6 timestamp,
    $7 the version read, $8... the fields. No row when the version moved on (or a parent
    is missing, with ``check_parents``)."""
    first_field = 8
    ctes, parents_found = _parent_checks(entity, first_field) if check_parents else ([], "")
    sets = ", ".join(
        f"{c.name} = {p}"
        for c, p in zip(entity.columns, _field_params(entity, first_field), strict=True)
    )
    extra = f" AND {parents_found}" if parents_found else ""
    written = (
        f"written AS (UPDATE {entity.table} SET version = version + 1, "
        f"updated_at = $6::timestamptz, {sets} "
        f"WHERE id = $1::uuid AND version = $7::integer AND deleted_at IS NULL{extra} "
        "RETURNING id, version)"
    )
    return "WITH " + ", ".join([*ctes, written, _LOCK]) + " " + _event_insert(entity)


@cache
def delete_sql(entity: EntityType) -> str:
    """$1 id, $2 event id, $3 event type, $4 payload, $5 metadata, $6 timestamp,
    $7 the version read: the tombstone (D5) and its event."""
    written = (
        f"written AS (UPDATE {entity.table} SET version = version + 1, "
        "updated_at = $6::timestamptz, deleted_at = $6::timestamptz "
        "WHERE id = $1::uuid AND version = $7::integer AND deleted_at IS NULL "
        "RETURNING id, version)"
    )
    return f"WITH {written}, {_LOCK} " + _event_insert(entity)


@cache
def select_sql(entity: EntityType) -> str:
    """$1 id: the live row."""
    columns = ", ".join(c.name for c in entity.columns)
    return (
        f"SELECT {_SYSTEM}, {columns} FROM {entity.table} "
        "WHERE id = $1::uuid AND deleted_at IS NULL"
    )


@cache
def lock_row_sql(entity: EntityType) -> str:
    """$1 id: the live row, locked for the rest of the transaction (batches, deletes)."""
    return select_sql(entity) + " FOR UPDATE"


@cache
def live_ids_sql(table: str) -> str:
    """$1 ids: those that are live, share-locked (a parent check inside a transaction)."""
    return (
        f"SELECT id FROM {table} WHERE id = ANY($1::uuid[]) AND deleted_at IS NULL "
        "ORDER BY id FOR SHARE"
    )


@cache
def create_many_sql(entity: EntityType) -> str:
    """$1 ids, $2 timestamps, $3... one array per field: many rows in one statement."""
    columns = ", ".join(c.name for c in entity.columns)
    arrays = ", ".join(
        [
            "$1::uuid[]",
            "$2::timestamptz[]",
            *(f"${3 + i}::{c.sql_type}[]" for i, c in enumerate(entity.columns)),
        ]
    )
    names = ", ".join(["id", "at", *(f"f{i}" for i in range(len(entity.columns)))])
    fields = ", ".join(f"u.f{i}" for i in range(len(entity.columns)))
    return (
        f"INSERT INTO {entity.table} ({_SYSTEM}, {columns}) "
        f"SELECT u.id, 1, u.at, u.at, {fields} FROM unnest({arrays}) AS u({names})"
    )


@cache
def batch_update_sql(entity: EntityType) -> str:
    """$1 id, $2 timestamp, $3 deleted (bool), $4... the fields: a row already locked."""
    first_field = 4
    sets = ", ".join(
        f"{c.name} = {p}"
        for c, p in zip(entity.columns, _field_params(entity, first_field), strict=True)
    )
    return (
        f"UPDATE {entity.table} SET version = version + 1, updated_at = $2::timestamptz, "
        f"deleted_at = CASE WHEN $3::boolean THEN $2::timestamptz END, {sets} "
        "WHERE id = $1::uuid AND deleted_at IS NULL RETURNING version"
    )


def batch_events_sql() -> str:
    """One array per event column but the position: the batch's last statement."""
    return (
        f"WITH lock AS (SELECT pg_advisory_xact_lock({EVENTS_LOCK_KEY})) "
        f"INSERT INTO events ({EVENT_COLUMNS}) "
        "SELECT nextval('events_global_position_seq'), e.* FROM lock, unnest("
        "$1::uuid[], $2::text[], $3::text[], $4::uuid[], $5::integer[], $6::jsonb[], "
        "$7::jsonb[], $8::timestamptz[]) AS e RETURNING event_id, global_position"
    )


@cache
def list_sql(entity: EntityType, parent_field: str | None, *, after_cursor: bool) -> str:
    """A keyset page of live entities, oldest first: [$ parent id], [$ created_at, $ id of
    the last row handed out], $ limit. Served by ``{table}_listing`` or
    ``{table}_by_{parent_field}``."""
    conditions = ["deleted_at IS NULL"]
    n = 0
    if parent_field is not None:
        n += 1
        conditions.append(f"{parent_field} = ${n}::uuid")
    if after_cursor:
        conditions.append(f"(created_at, id) > (${n + 1}::timestamptz, ${n + 2}::uuid)")
        n += 2
    columns = ", ".join(c.name for c in entity.columns)
    return (
        f"SELECT {_SYSTEM}, {columns} FROM {entity.table} WHERE {' AND '.join(conditions)} "
        f"ORDER BY created_at, id LIMIT ${n + 1}"
    )


@cache
def create_many_with_events_sql(entity: EntityType) -> str:
    """Many creates of a type without parents and their events in ONE statement (one round
    trip, its own transaction). Only what differs per change travels as an array: $1 entity
    ids, $2 the timestamp, $3... one array per field, then the event ids, the event type,
    the payloads and the metadata. (asyncpg checks and encodes every array element, and the
    server parses each: repeating constants per row cost a fifth of a batch.)"""
    fields = len(entity.columns)
    event_ids, event_type, payloads, metadata = (3 + fields + i for i in range(4))
    arrays = ", ".join(
        ["$1::uuid[]", *(f"${3 + i}::{c.sql_type}[]" for i, c in enumerate(entity.columns))]
    )
    names = ", ".join(["id", *(f"f{i}" for i in range(fields))])
    columns = ", ".join(c.name for c in entity.columns)
    values = ", ".join(f"u.f{i}" for i in range(fields))
    written = (
        f"written AS (INSERT INTO {entity.table} ({_SYSTEM}, {columns}) "
        f"SELECT u.id, 1, $2::timestamptz, $2::timestamptz, {values} "
        f"FROM unnest({arrays}) AS u({names}) RETURNING id)"
    )
    return (
        f"WITH {written}, {_LOCK} "
        f"INSERT INTO events ({EVENT_COLUMNS}) "
        f"SELECT nextval('events_global_position_seq'), e.event_id, ${event_type}::text, "
        f"'{entity.name}', e.entity_id, 1, e.payload, ${metadata}::jsonb, $2::timestamptz "
        f"FROM lock, unnest(${event_ids}::uuid[], $1::uuid[], ${payloads}::jsonb[]) "
        "AS e(event_id, entity_id, payload) "
        "RETURNING event_id, global_position"
    )
