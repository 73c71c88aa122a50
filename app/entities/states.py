"""An entity's state on its way into and out of the store.

In: fields are validated against the entity's model (a NUL character, which Postgres text
and JSON cannot store, is found first and its field named), then bound as column values.
Out: a row becomes the state model, and state plus system columns the response model.
Payloads and metadata travel as JSON text.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import asyncpg
import pydantic
import pydantic_core
from pydantic import BaseModel

from app.entities.declaration import EntityType
from app.entities.records import ChangeContext, current_context
from app.errors import InvalidEntityError

__all__ = [
    "field_values",
    "from_json",
    "metadata_json",
    "nul_in",
    "out",
    "row_out",
    "state_of",
    "to_json",
    "validate",
]


def to_json(value: Any) -> str:
    return pydantic_core.to_json(value).decode()


def from_json(text: str) -> dict[str, Any]:
    value: dict[str, Any] = pydantic_core.from_json(text)
    return value


def metadata_json(context: ChangeContext | None) -> str:
    """The event metadata of a change (D11): ``context``, else the one of the caller."""
    return to_json((context or current_context()).metadata())


def validate(entity: EntityType, fields: Mapping[str, Any]) -> BaseModel:
    """``fields`` as the entity's model; ``InvalidEntityError`` naming every bad field."""
    # One C-speed encode finds a NUL (JSON writes it as \u0000); the walk names the field.
    encoded = pydantic_core.to_json(fields, fallback=str)
    where = nul_in(fields, "") if b"\\u0000" in encoded else None
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


def state_of(entity: EntityType, row: asyncpg.Record) -> BaseModel:
    return entity.fields.model_validate({c.name: c.from_db(row[c.name]) for c in entity.columns})


def out(entity: EntityType, row: Mapping[str, Any] | asyncpg.Record, state: BaseModel) -> BaseModel:
    """The response model: ``state`` and the system columns of ``row``."""
    return entity.out_model.model_validate(
        {
            **dict(state),
            "id": row["id"],
            "version": row["version"],
            "created_at": row["created_at"],
            "updated_at": row["updated_at"],
        }
    )


def row_out(entity: EntityType, row: asyncpg.Record) -> BaseModel:
    return out(entity, row, state_of(entity, row))


def field_values(entity: EntityType, state: BaseModel) -> list[Any]:
    """The fields as asyncpg binds them, in column order."""
    return [c.to_db(getattr(state, c.name)) for c in entity.columns]


def nul_in(value: Any, path: str) -> str | None:
    """The path of the first string (or key) holding a NUL character, else ``None``."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, Mapping):
        for key, item in value.items():
            inner = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and "\x00" in key:
                return inner
            found = nul_in(item, inner)
            if found is not None:
                return found
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found = nul_in(item, f"{path}[{index}]")
            if found is not None:
                return found
    return None
