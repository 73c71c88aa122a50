"""``ConversationMessage``, ``ConversationQuery`` and the bounds every input is checked against."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Literal, Self

from app.data.errors import InvalidConversationError

__all__ = [
    "DEFAULT_MAX_FIELD_BYTES",
    "MAX_CONVERSATION_ID_CHARS",
    "MAX_LIMIT",
    "MAX_QUERY_CHARS",
    "ConversationMessage",
    "ConversationQuery",
    "SearchOrder",
    "check_conversation_id",
    "check_limit",
    "check_query",
    "check_table_name",
]

MAX_CONVERSATION_ID_CHARS: Final = 256
MAX_QUERY_CHARS: Final = 1000
MAX_LIMIT: Final = 1000
DEFAULT_MAX_FIELD_BYTES: Final = 1024 * 1024
SearchOrder = Literal["recency", "relevance"]
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}(\.[A-Za-z_][A-Za-z0-9_]{0,62})?\Z")


def _show(value: object) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:60]}{'...' if len(text) > 60 else ''}"


def check_table_name(name: object) -> str:
    """``table`` or ``schema.table``, plain identifiers (they are quoted into SQL)."""
    if not isinstance(name, str) or not _IDENTIFIER.match(name):
        raise InvalidConversationError(
            "table_name must be a plain identifier or schema.table (letters, digits, _; at "
            f"most 63 bytes each); got {_show(name)}"
        )
    return name


def quoted_table(name: str) -> str:
    """``"table"`` or ``"schema"."table"`` (lower-cased, as Postgres folds unquoted names)."""
    return ".".join(f'"{part.lower()}"' for part in check_table_name(name).split("."))


def check_conversation_id(value: object) -> str:
    """A non-empty ``str`` of at most MAX_CONVERSATION_ID_CHARS characters."""
    if (
        not isinstance(value, str)
        or not value
        or len(value) > MAX_CONVERSATION_ID_CHARS
        or "\x00" in value
    ):
        raise InvalidConversationError(
            f"conversation_id must be a non-empty str of at most {MAX_CONVERSATION_ID_CHARS} "
            f"characters without NUL; got {_show(value)}"
        )
    return value


def check_query(value: object) -> str:
    """A search text of 1 to MAX_QUERY_CHARS characters."""
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_QUERY_CHARS:
        raise InvalidConversationError(
            f"a search query must be a non-blank str of at most {MAX_QUERY_CHARS} characters; "
            f"got {_show(value)}"
        )
    if "\x00" in value:
        raise InvalidConversationError("a search query cannot contain NUL characters")
    return value


def check_limit(value: object) -> int:
    """An int >= 1; above MAX_LIMIT it is capped to MAX_LIMIT (contract CV4)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidConversationError(f"limit must be an int >= 1; got {_show(value)}")
    return min(value, MAX_LIMIT)


def aware(value: object, what: str = "timestamp") -> datetime:
    """A timezone-aware datetime; a naive one is read as local time (``datetime.now()``)."""
    if not isinstance(value, datetime):
        raise InvalidConversationError(f"{what} must be a datetime; got {_show(value)}")
    return value if value.tzinfo is not None else value.astimezone()


@dataclass(slots=True)
class ConversationMessage:
    """One exchange: what the user said, what the agent answered, when and how fast.

    ``message_id`` is assigned by the store when saved (None until then).
    """

    conversation_id: str
    user_input: str
    agent_response: str
    timestamp: datetime
    response_time_ms: float
    message_id: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def validated(self, max_field_bytes: int) -> tuple[Any, ...]:
        """``(conversation_id, timestamp, user_input, agent_response, response_time_ms,
        metadata JSON)`` after checking every field; InvalidConversationError names the bad one."""
        check_conversation_id(self.conversation_id)
        for name in ("user_input", "agent_response"):
            text = getattr(self, name)
            if not isinstance(text, str):
                raise InvalidConversationError(f"{name} must be a str; got {_show(text)}")
            if "\x00" in text:
                raise InvalidConversationError(f"{name} cannot contain NUL characters")
            if len(text) > max_field_bytes // 4 and len(text.encode()) > max_field_bytes:
                raise InvalidConversationError(
                    f"{name} is {len(text.encode())} bytes, over the limit of "
                    f"{max_field_bytes} (CONVERSATIONS__MAX_FIELD_BYTES)"
                )
        rt = self.response_time_ms
        if isinstance(rt, bool) or not isinstance(rt, int | float) or not math.isfinite(rt):
            raise InvalidConversationError(
                f"response_time_ms must be a finite number; got {_show(rt)}"
            )
        if rt < 0:
            raise InvalidConversationError(f"response_time_ms must be >= 0; got {rt!r}")
        meta = self.metadata if self.metadata is not None else {}
        if not isinstance(meta, dict):
            raise InvalidConversationError(f"metadata must be a dict; got {_show(meta)}")
        try:
            encoded = json.dumps(meta, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise InvalidConversationError(f"metadata must be JSON-serialisable: {exc}") from exc
        if len(encoded) > max_field_bytes or "\\u0000" in encoded:
            raise InvalidConversationError(
                f"metadata must encode to at most {max_field_bytes} bytes without NUL"
            )
        return (
            self.conversation_id,
            aware(self.timestamp),
            self.user_input,
            self.agent_response,
            float(rt),
            encoded,
        )


class ConversationQuery:
    """Filters combined with *and*, built step by step; every value is a bound parameter.

    ``ConversationQuery().conversation_id("c1").date_range(start, end).contains_text("refund")
    .min_response_time(100).limit(20)``; the date range is half-open ``[start, end)``.
    """

    def __init__(self) -> None:
        self._conversation_id: str | None = None
        self._start: datetime | None = None
        self._end: datetime | None = None
        self._text: str | None = None
        self._min_response_ms: float | None = None
        self._limit = 100

    def conversation_id(self, value: str) -> Self:
        """Only messages of this conversation."""
        self._conversation_id = check_conversation_id(value)
        return self

    def date_range(self, start: datetime | None = None, end: datetime | None = None) -> Self:
        """Only messages with ``start <= timestamp < end`` (either bound may be None)."""
        self._start = None if start is None else aware(start, "start")
        self._end = None if end is None else aware(end, "end")
        if self._start is not None and self._end is not None and self._start > self._end:
            raise InvalidConversationError(f"date_range start {start} is after end {end}")
        return self

    def contains_text(self, text: str) -> Self:
        """Only messages matching this full-text query (web-search syntax)."""
        self._text = check_query(text)
        return self

    def min_response_time(self, ms: float) -> Self:
        """Only messages that took at least ``ms`` milliseconds."""
        if isinstance(ms, bool) or not isinstance(ms, int | float) or not math.isfinite(ms):
            raise InvalidConversationError(f"min_response_time must be a finite number; got {ms!r}")
        self._min_response_ms = float(ms)
        return self

    def limit(self, n: int) -> Self:
        """At most ``n`` messages (capped at MAX_LIMIT)."""
        self._limit = check_limit(n)
        return self

    def to_sql(self, columns: str, table: str) -> tuple[str, list[Any]]:
        """The statement, newest first, and its arguments (``$1``...)."""
        where: list[str] = []
        args: list[Any] = []

        def bind(value: Any) -> str:
            args.append(value)
            return f"${len(args)}"

        if self._conversation_id is not None:
            where.append(f"conversation_id = {bind(self._conversation_id)}")
        if self._start is not None:
            where.append(f"timestamp >= {bind(self._start)}")
        if self._end is not None:
            where.append(f"timestamp < {bind(self._end)}")
        if self._text is not None:
            where.append(f"search @@ websearch_to_tsquery('english', {bind(self._text)})")
        if self._min_response_ms is not None:
            where.append(f"response_time_ms >= {bind(self._min_response_ms)}")
        condition = " AND ".join(where) if where else "TRUE"
        sql = (
            f"SELECT {columns} FROM {table} WHERE {condition} "  # noqa: S608 (checked, quoted identifier)
            f"ORDER BY timestamp DESC, id DESC LIMIT {bind(self._limit)}"
        )
        return sql, args
