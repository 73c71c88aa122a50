"""``EntityType``: everything about one kind of entity, derived from one pydantic model.

An entity type is declared once, as a pydantic model of its own fields (``Agent``, ``Goal``)::

    class Goal(EntityFields):
        agent_id: Annotated[UUID, Parent("agent")]
        description: str
        status: GoalStatus = "pending"

    GOALS = EntityType("goal", "goals", Goal)

From it come the table's columns and their Postgres types, the request models (create and
replace: the model itself; PATCH: every field optional), the response model (the fields plus
``id``, ``version``, ``created_at``, ``updated_at``), the parent references (``Parent``) and
whether a ``status`` field names the event type (D6). The table itself is written once, in a
migration, with those columns plus ``id``, ``version``, ``created_at``, ``updated_at`` and
``deleted_at`` (the tombstone).
"""

from __future__ import annotations

import json
import types
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar, Literal, Union, get_args, get_origin
from uuid import UUID

import pydantic_core
from pydantic import BaseModel, ConfigDict, Field, create_model
from pydantic.fields import FieldInfo

__all__ = ["Column", "EntityFields", "EntityType", "Parent", "entity_name_is_valid"]

RESERVED_CHANGES = frozenset({"created", "updated", "deleted"})
SYSTEM_COLUMNS: tuple[str, ...] = ("id", "version", "created_at", "updated_at")
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz_0123456789")


def entity_name_is_valid(name: str) -> bool:
    """Entity and table names become SQL identifiers and event types: lowercase words."""
    return bool(name) and name[0].isalpha() and set(name) <= _NAME_CHARS and len(name) <= 63


class EntityFields(BaseModel):
    """Base of an entity's field model: unknown fields are refused, values are checked."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class Parent:
    """Marks a UUID field as a reference to a live entity of type ``entity`` (by name)."""

    entity: str


@dataclass(frozen=True)
class Column:
    """One field of an entity as a table column."""

    name: str
    sql_type: str
    is_json: bool
    nullable: bool
    parent: str | None = None

    def to_db(self, value: Any) -> Any:
        """The value as asyncpg binds it (JSON columns as text: no per-connection codec)."""
        if value is None:
            return None
        if self.is_json:
            return pydantic_core.to_json(value).decode()
        return value

    def from_db(self, value: Any) -> Any:
        if value is None or not self.is_json:
            return value
        return json.loads(value)


_SQL_TYPES: dict[type, str] = {
    str: "text",
    bool: "boolean",
    int: "bigint",
    float: "double precision",
    UUID: "uuid",
    datetime: "timestamptz",
}


def _strip_optional(annotation: Any) -> tuple[Any, bool]:
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        members = [arg for arg in get_args(annotation) if arg is not type(None)]
        nullable = len(members) < len(get_args(annotation))
        if len(members) == 1:
            return members[0], nullable
        return annotation, nullable
    return annotation, False


def _sql_type(annotation: Any) -> tuple[str, bool]:
    """(Postgres type, stored as JSON) of a field's annotation."""
    if get_origin(annotation) is Literal and all(isinstance(a, str) for a in get_args(annotation)):
        return "text", False
    if isinstance(annotation, type):
        if issubclass(annotation, StrEnum):
            return "text", False
        for python_type, sql in _SQL_TYPES.items():
            if annotation is python_type:
                return sql, False
    return "jsonb", True  # dicts, lists, Any, unions of those


def _column(name: str, info: FieldInfo) -> Column:
    annotation, nullable = _strip_optional(info.annotation)
    sql_type, is_json = _sql_type(annotation)
    parents = [item.entity for item in info.metadata if isinstance(item, Parent)]
    if parents and sql_type != "uuid":
        raise TypeError(f"field {name!r} is marked Parent but is not a UUID")
    return Column(name, sql_type, is_json, nullable, parents[0] if parents else None)


def _statuses(fields: type[EntityFields]) -> tuple[str, ...]:
    """The closed set of statuses; each becomes part of an event type, so each must be a
    lowercase word and must not read as one of the other changes (D6)."""
    annotation, _ = _strip_optional(fields.model_fields["status"].annotation)
    if get_origin(annotation) is Literal:
        values = tuple(str(value) for value in get_args(annotation))
    elif isinstance(annotation, type) and issubclass(annotation, StrEnum):
        values = tuple(member.value for member in annotation)
    else:
        raise TypeError(f"{fields.__name__}.status must be a Literal or StrEnum of words")
    bad = [v for v in values if not entity_name_is_valid(v) or v in RESERVED_CHANGES]
    if bad:
        raise ValueError(
            f"{fields.__name__}.status values {bad} cannot name events: use lowercase words "
            f"other than {sorted(RESERVED_CHANGES)}"
        )
    return values


def _nullable(annotation: Any) -> Any:
    return annotation | None


def _title(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


class EntityType:
    """One kind of entity: its name (``goal``), table (``goals``) and field model."""

    status_field: ClassVar[str] = "status"

    def __init__(
        self,
        name: str,
        table: str,
        fields: type[EntityFields],
        parent_tables: Mapping[str, str] | None = None,
    ) -> None:
        if not entity_name_is_valid(name) or not entity_name_is_valid(table):
            raise ValueError(
                f"entity and table names must be lowercase words (a-z, 0-9, _), got "
                f"{name!r} and {table!r}"
            )
        clash = set(fields.model_fields) & {*SYSTEM_COLUMNS, "deleted_at"}
        if clash:
            raise ValueError(f"{fields.__name__} declares system columns {sorted(clash)}")
        self.name = name
        self.table = table
        self.fields = fields
        self.columns: tuple[Column, ...] = tuple(
            _column(field, info) for field, info in fields.model_fields.items()
        )
        self.by_name = {column.name: column for column in self.columns}
        self.parents: dict[str, str] = {c.name: c.parent for c in self.columns if c.parent}
        parent_tables = dict(parent_tables or {})
        if set(parent_tables) != set(self.parents):
            raise ValueError(
                f"{name}: parent tables given for {sorted(parent_tables)}, but the parent "
                f"fields are {sorted(self.parents)}"
            )
        self.parent_tables = parent_tables
        self.has_status = self.status_field in fields.model_fields
        title = _title(name)
        optional: dict[str, Any] = {
            field: (_nullable(info.annotation), Field(default=None, description=info.description))
            for field, info in fields.model_fields.items()
        }
        self.patch_model: type[BaseModel] = create_model(
            f"{title}Patch", __config__=ConfigDict(extra="forbid"), **optional
        )
        self.out_model: type[BaseModel] = create_model(
            f"{title}Out",
            __base__=fields,
            id=(UUID, ...),
            version=(int, ...),
            created_at=(datetime, ...),
            updated_at=(datetime, ...),
        )
        self.statuses = _statuses(fields) if self.has_status else ()

    def __repr__(self) -> str:
        return f"EntityType({self.name!r}, {self.table!r}, {self.fields.__name__})"

    def event_type(self, change: Literal["created", "updated", "deleted"]) -> str:
        """``{entity}_created``, ``{entity}_updated``, ``{entity}_deleted`` (D6)."""
        return f"{self.name}_{change}"

    def update_event_type(self, changes: Mapping[str, tuple[Any, Any]]) -> str:
        """D6: a change of ``status`` is ``{entity}_{new status}``, any other ``_updated``."""
        if self.has_status and self.status_field in changes:
            return f"{self.name}_{changes[self.status_field][1]}"
        return self.event_type("updated")

    def state_json(self, state: BaseModel) -> dict[str, Any]:
        """The fields as JSON values (what event payloads carry)."""
        return state.model_dump(mode="json")
