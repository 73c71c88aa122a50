"""Reading the events table: filtered keyset listing (D10), one event by id, and tailing.

Every listing is ``ORDER BY global_position`` with at most one filter column in front of it,
each served by an index (``events_by_type``, ``events_by_entity_type``, the per-entity unique
index, the primary key), so a page costs the same at any depth. ``offset`` exists for the
original API's clients and is bounded (OFFSET reads and drops every skipped row).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Literal
from uuid import UUID

import asyncpg
import pydantic_core

from app.database.driver_errors import translated
from app.entities.cursor import decode_cursor, encode_cursor
from app.entities.records import StoredEvent
from app.entities.sql import Connection
from app.errors import EventNotFoundError, InvalidListingError

__all__ = [
    "EVENT_JSON",
    "MAX_EVENT_PAGE",
    "MAX_OFFSET",
    "EventPage",
    "EventQuery",
    "get_event",
    "get_event_json",
    "list_events",
    "list_events_json",
    "read_after",
]

MAX_EVENT_PAGE = 500
MAX_OFFSET = 10_000
_COLUMNS = (
    "global_position, event_id, event_type, entity_type, entity_id, entity_version, "
    "payload, metadata, created_at"
)


# The event as the API sends it (``StoredEvent.as_json``, D8), built by Postgres: a page goes
# out as text without being decoded and encoded again in Python. The timestamp is written
# the way Python's isoformat(timespec="microseconds") writes a UTC time.
EVENT_JSON = (
    "json_build_object('event_id', event_id, 'event_type', event_type, "
    "'entity_type', entity_type, 'entity_id', entity_id, 'entity_version', entity_version, "
    "'global_position', global_position, 'payload', payload, 'metadata', metadata, "
    "'timestamp', to_char(created_at AT TIME ZONE 'UTC', "
    """'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"'))::text"""
)


@dataclass(frozen=True)
class EventQuery:
    """Filters and paging of an events listing (all optional)."""

    event_type: str | None = None
    entity_type: str | None = None
    entity_id: UUID | None = None
    after: int | None = None
    before: int | None = None
    limit: int = 100
    order: Literal["asc", "desc"] = "asc"
    cursor: str | None = None
    offset: int = 0

    def check(self) -> None:
        if not 1 <= self.limit <= MAX_EVENT_PAGE:
            raise InvalidListingError(f"limit must be 1..{MAX_EVENT_PAGE}, got {self.limit}")
        if not 0 <= self.offset <= MAX_OFFSET:
            raise InvalidListingError(
                f"offset must be 0..{MAX_OFFSET}, got {self.offset}: page further with "
                "the cursor (next_cursor), which costs the same at any depth"
            )
        if self.entity_id is not None and self.entity_type is None:
            raise InvalidListingError("entity_id needs entity_type (ids are per type)")
        if self.cursor is not None and self.offset:
            raise InvalidListingError("give either cursor or offset, not both")

    def kind(self) -> str:
        """The cursor tag: a cursor is valid only for the same filters and order."""
        filters = f"{self.event_type}|{self.entity_type}|{self.entity_id}|{self.order}"
        return "events:" + hashlib.sha256(filters.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class EventPage:
    items: list[StoredEvent]
    next_cursor: str | None


def event_from_row(row: asyncpg.Record) -> StoredEvent:
    # asyncpg hands out its own UUID subclass; events carry the standard one (DataEvent
    # insists on exactly ``uuid.UUID``).
    return StoredEvent(
        row["global_position"],
        UUID(int=row["event_id"].int),
        row["event_type"],
        row["entity_type"],
        UUID(int=row["entity_id"].int),
        row["entity_version"],
        pydantic_core.from_json(row["payload"]),
        pydantic_core.from_json(row["metadata"]),
        row["created_at"],
    )


def listing_sql(query: EventQuery, *, as_json: bool = False) -> tuple[str, list[Any]]:
    """The SELECT for ``query`` and its arguments (the EXPLAIN tests use it too);
    ``as_json``: each row is the position and the event's JSON text, made by Postgres."""
    query.check()
    args: list[Any] = []
    conditions: list[str] = []

    def arg(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    if query.event_type is not None:
        conditions.append(f"event_type = {arg(query.event_type)}")
    if query.entity_type is not None:
        conditions.append(f"entity_type = {arg(query.entity_type)}")
    if query.entity_id is not None:
        conditions.append(f"entity_id = {arg(query.entity_id)}::uuid")
    if query.after is not None:
        conditions.append(f"global_position > {arg(query.after)}::bigint")
    if query.before is not None:
        conditions.append(f"global_position < {arg(query.before)}::bigint")
    if query.cursor is not None:
        (position,) = decode_cursor(query.kind(), query.cursor, 1)
        if not isinstance(position, int):
            raise InvalidListingError("cursor holds no position")
        op = ">" if query.order == "asc" else "<"
        conditions.append(f"global_position {op} {arg(position)}::bigint")
    where = f"WHERE {' AND '.join(conditions)} " if conditions else ""
    direction = "ASC" if query.order == "asc" else "DESC"
    # Within one entity, versions follow positions: the per-entity index gives the order.
    order = (
        f"entity_version {direction}"
        if query.entity_id is not None
        else f"global_position {direction}"
    )
    columns = f"global_position, {EVENT_JSON} AS json" if as_json else _COLUMNS
    text = f"SELECT {columns} FROM events {where}ORDER BY {order} LIMIT {arg(query.limit + 1)}"  # noqa: S608
    if query.offset:
        text += f" OFFSET {arg(query.offset)}"
    return text, args


async def list_events(conn: Connection | asyncpg.Pool, query: EventQuery) -> EventPage:
    """A page of events matching ``query`` and the cursor of the next (``None`` at the end)."""
    text, args = listing_sql(query)
    with translated("list events"):
        rows = await conn.fetch(text, *args)
    more = len(rows) > query.limit
    items = [event_from_row(row) for row in rows[: query.limit]]
    next_cursor = encode_cursor(query.kind(), [items[-1].global_position]) if more else None
    return EventPage(items, next_cursor)


async def list_events_json(conn: Connection | asyncpg.Pool, query: EventQuery) -> bytes:
    """The page as the API's JSON body (``{"items": [...], "next_cursor": ...}``), built from
    the JSON Postgres made for each event."""
    text, args = listing_sql(query, as_json=True)
    with translated("list events"):
        rows = await conn.fetch(text, *args)
    more = len(rows) > query.limit
    rows = rows[: query.limit]
    cursor = encode_cursor(query.kind(), [rows[-1]["global_position"]]) if more else None
    items = ",".join(row["json"] for row in rows)
    return f'{{"items":[{items}],"next_cursor":{json.dumps(cursor)}}}'.encode()


async def get_event_json(conn: Connection | asyncpg.Pool, event_id: UUID) -> bytes:
    """One event as the API's JSON body."""
    with translated("get event"):
        found = await conn.fetchval(
            f"SELECT {EVENT_JSON} FROM events WHERE event_id = $1",  # noqa: S608
            event_id,
        )
    if found is None:
        raise EventNotFoundError(f"no event with id {event_id}")
    return str(found).encode()


async def get_event(conn: Connection | asyncpg.Pool, event_id: UUID) -> StoredEvent:
    with translated("get event"):
        row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM events WHERE event_id = $1", event_id)  # noqa: S608
    if row is None:
        raise EventNotFoundError(f"no event with id {event_id}")
    return event_from_row(row)


async def read_after(conn: Connection, position: int, limit: int) -> list[StoredEvent]:
    """The next ``limit`` events after ``position``, oldest first (relay and projections)."""
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM events WHERE global_position > $1 "  # noqa: S608
        "ORDER BY global_position LIMIT $2",
        position,
        limit,
    )
    return [event_from_row(row) for row in rows]
