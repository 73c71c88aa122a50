"""One imported row, checked and converted to the staging table's types.

Every error names the row (1-based, in file order) and the field, and says what was expected.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

from app.data.conversations.models import MAX_CONVERSATION_ID_CHARS
from app.data.errors import FieldMappingError, MalformedImportError
from app.data.transfer.formats import MESSAGE_FIELDS, REQUIRED_FIELDS

__all__ = ["StagedRow", "check_mapping", "coerce_row"]

StagedRow = tuple[int | None, str, datetime, str, str, float, str]
_KNOWN: Final = frozenset(MESSAGE_FIELDS)


def check_mapping(field_mapping: Mapping[str, str] | None) -> dict[str, str]:
    """``{file field: message field}``; a target that is not a message field is an error."""
    if field_mapping is None:
        return {}
    if not isinstance(field_mapping, Mapping):
        raise FieldMappingError(
            f"field_mapping must map file field names to message fields; got "
            f"{type(field_mapping).__name__}"
        )
    for source, target in field_mapping.items():
        if not isinstance(source, str) or target not in _KNOWN:
            raise FieldMappingError(
                f"field_mapping maps {source!r} to {target!r}, which is not a message field; "
                f"message fields are {list(MESSAGE_FIELDS)}"
            )
    return dict(field_mapping)


def mapped_names(names: list[str], mapping: dict[str, str], *, row: int | None) -> list[str]:
    """File field names renamed by ``mapping``; unknown, repeated or missing ones are errors."""
    renamed = [mapping.get(name, name) for name in names]
    for original, name in zip(names, renamed, strict=True):
        if name not in _KNOWN:
            raise MalformedImportError(
                f"unknown field (map it with field_mapping to one of {list(MESSAGE_FIELDS)})",
                row=row,
                field=original,
            )
    if len(set(renamed)) != len(renamed):
        raise MalformedImportError(f"two fields map to the same message field: {renamed}", row=row)
    missing = sorted(REQUIRED_FIELDS - set(renamed))
    if missing:
        raise MalformedImportError("required field is missing", row=row, field=missing[0])
    return renamed


def _bad(row: int, field: str, expected: str, value: object) -> MalformedImportError:
    shown = repr(value)
    shown = shown if len(shown) <= 60 else shown[:60] + "..."
    return MalformedImportError(f"expected {expected}, got {shown}", row=row, field=field)


def _text(raw: dict[str, Any], name: str, row: int, limit: int) -> str:
    value = raw.get(name)
    if not isinstance(value, str):
        raise _bad(row, name, "a string", value)
    if "\x00" in value:
        raise MalformedImportError("NUL characters are not allowed", row=row, field=name)
    if len(value) > limit // 4 and len(value.encode()) > limit:
        raise MalformedImportError(
            f"{len(value.encode())} bytes, over CONVERSATIONS__MAX_FIELD_BYTES={limit}",
            row=row,
            field=name,
        )
    return value


def _message_id(raw: dict[str, Any], row: int) -> int | None:
    value = raw.get("message_id")
    if value in (None, ""):
        return None
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _bad(row, "message_id", "a positive integer", raw.get("message_id"))
    return value


def _timestamp(raw: dict[str, Any], row: int) -> datetime:
    value = raw.get("timestamp")
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise _bad(row, "timestamp", "an ISO 8601 date-time", value) from None
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise _bad(row, "timestamp", "a date-time with a UTC offset", raw.get("timestamp"))
    return value


def _elapsed(raw: dict[str, Any], row: int) -> float:
    value = raw.get("response_time_ms")
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise _bad(row, "response_time_ms", "a number", value) from None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < 0
    ):
        raise _bad(row, "response_time_ms", "a finite number >= 0", raw.get("response_time_ms"))
    return float(value)


def _metadata(raw: dict[str, Any], row: int, limit: int) -> str:
    value = raw.get("metadata")
    if value in (None, ""):
        return "{}"
    if isinstance(value, str):
        if len(value) > limit:
            raise _bad(row, "metadata", f"at most {limit} bytes", value[:20])
        try:
            value = json.loads(value)
        except ValueError:
            raise _bad(row, "metadata", "a JSON object", value) from None
    if not isinstance(value, dict):
        raise _bad(row, "metadata", "a JSON object", value)
    encoded = json.dumps(value, allow_nan=False)
    if "\\u0000" in encoded:
        raise MalformedImportError("NUL characters are not allowed", row=row, field="metadata")
    return encoded


def coerce_row(raw: dict[str, Any], row: int, max_field_bytes: int) -> StagedRow:
    """A row of already-renamed fields as staging values; MalformedImportError if wrong."""
    message_id = _message_id(raw, row)
    conversation_id = _text(raw, "conversation_id", row, max_field_bytes)
    if not conversation_id or len(conversation_id) > MAX_CONVERSATION_ID_CHARS:
        raise _bad(
            row, "conversation_id", f"1 to {MAX_CONVERSATION_ID_CHARS} characters", conversation_id
        )
    return (
        message_id,
        conversation_id,
        _timestamp(raw, row),
        _text(raw, "user_input", row, max_field_bytes),
        _text(raw, "agent_response", row, max_field_bytes),
        _elapsed(raw, row),
        _metadata(raw, row, max_field_bytes),
    )
