"""Export formats, merge strategies, import counts and the message fields files carry."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final, Literal

from app.data.errors import FieldMappingError, TransferError

__all__ = [
    "MESSAGE_FIELDS",
    "REQUIRED_FIELDS",
    "SESSION_FIELDS",
    "ExportFormat",
    "ImportCounts",
    "MergeStrategy",
    "check_fields",
    "parse_format",
]

MergeStrategy = Literal["append", "replace", "skip_duplicates"]
MERGE_STRATEGIES: Final = ("append", "replace", "skip_duplicates")

# A message as files carry it, in file order; message_id and metadata may be absent.
MESSAGE_FIELDS: Final = (
    "message_id",
    "conversation_id",
    "timestamp",
    "user_input",
    "agent_response",
    "response_time_ms",
    "metadata",
)
REQUIRED_FIELDS: Final = frozenset(
    ("conversation_id", "timestamp", "user_input", "agent_response", "response_time_ms")
)
SESSION_FIELDS: Final = (
    "session_id",
    "user_id",
    "created_at",
    "last_activity",
    "metadata",
    "is_active",
)


class ExportFormat(StrEnum):
    """The file formats of export and import."""

    JSON = "json"
    CSV = "csv"
    XML = "xml"
    PARQUET = "parquet"


def parse_format(value: object) -> ExportFormat:
    """``value`` (an ExportFormat or its name, any case) as an ExportFormat."""
    try:
        return ExportFormat(str(value).lower() if not isinstance(value, ExportFormat) else value)
    except ValueError:
        known = ", ".join(item.value for item in ExportFormat)
        raise TransferError(f"format must be one of {known}; got {value!r}") from None


def check_fields(fields: object, allowed: tuple[str, ...]) -> tuple[str, ...]:
    """A non-empty selection of ``allowed`` field names, kept in ``allowed``'s order."""
    if not isinstance(fields, list | tuple) or not fields:
        raise FieldMappingError(f"fields must be a non-empty list of names from {allowed}")
    unknown = [name for name in fields if name not in allowed]
    if unknown:
        raise FieldMappingError(f"unknown field(s) {unknown}; known fields are {list(allowed)}")
    return tuple(name for name in allowed if name in fields)


@dataclass(frozen=True, slots=True)
class ImportCounts:
    """What an import did: rows read, and how many were inserted, updated or skipped."""

    total: int
    inserted: int
    updated: int
    skipped: int

    def as_dict(self) -> dict[str, int]:
        """The counts as a plain dict."""
        return {
            "total": self.total,
            "inserted": self.inserted,
            "updated": self.updated,
            "skipped": self.skipped,
        }
