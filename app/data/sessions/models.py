"""``SessionConfig`` and ``SessionData``, and the checks every store applies to its input."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Literal, NamedTuple

from pydantic_core import from_json

from app.data.errors import InvalidSessionError
from app.errors import StateBackendError

__all__ = [
    "MAX_ID_CHARS",
    "SessionConfig",
    "SessionData",
    "SessionPolicy",
    "StoredSession",
    "check_session_id",
    "check_user_id",
    "encode_fields",
]

SessionPolicy = Literal["evict_oldest", "reject"]
MAX_ID_CHARS: Final = 256
DEFAULT_MAX_METADATA_BYTES: Final = 64 * 1024


def _positive_seconds(value: float, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidSessionError(f"{name} must be a finite number of seconds; got {value!r}")
    if value <= 0 or value > 10 * 365 * 86400:
        raise InvalidSessionError(f"{name} must be > 0 and at most 10 years; got {value!r}")
    return float(value)


def _cap(value: int | None, name: str, *, optional: bool) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidSessionError(f"{name} must be an int >= 1; got {value!r}")


@dataclass(frozen=True, slots=True)
class SessionConfig:
    """How sessions live: idle timeout (sliding), cleanup period, caps and what a full cap does.

    ``policy="evict_oldest"`` (the default) makes room by removing the least recently active
    session; ``"reject"`` raises ``SessionLimitError`` instead. ``max_sessions_per_user``
    (optional) applies the same policy per user.
    """

    session_timeout: float = 3600.0
    cleanup_interval: float = 300.0
    max_sessions: int = 10_000
    max_sessions_per_user: int | None = None
    policy: SessionPolicy = "evict_oldest"
    max_metadata_bytes: int = DEFAULT_MAX_METADATA_BYTES

    def __post_init__(self) -> None:
        _positive_seconds(self.session_timeout, "session_timeout")
        _positive_seconds(self.cleanup_interval, "cleanup_interval")
        _cap(self.max_sessions, "max_sessions", optional=False)
        _cap(self.max_sessions_per_user, "max_sessions_per_user", optional=True)
        _cap(self.max_metadata_bytes, "max_metadata_bytes", optional=False)
        if self.policy not in ("evict_oldest", "reject"):
            raise InvalidSessionError(
                f"policy must be 'evict_oldest' or 'reject'; got {self.policy!r}"
            )

    @property
    def timeout_us(self) -> int:
        """The idle timeout in microseconds (the stores' time unit)."""
        return max(1, round(self.session_timeout * 1_000_000))


def _utc(us: int) -> datetime:
    return datetime.fromtimestamp(us / 1_000_000, tz=UTC)


@dataclass(slots=True)
class SessionData:
    """A session as the manager hands it out: a copy, changing it changes nothing stored."""

    session_id: str
    user_id: str
    created_at: datetime
    last_activity: datetime
    metadata: dict[str, Any] = field(default_factory=dict)
    is_active: bool = True

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: timestamps as ISO 8601 strings."""
        return {
            "session_id": self.session_id,
            "user_id": self.user_id,
            "created_at": self.created_at.isoformat(),
            "last_activity": self.last_activity.isoformat(),
            "metadata": self.metadata,
            "is_active": self.is_active,
        }


class StoredSession(NamedTuple):
    """What a store returns: times in microseconds since the epoch, metadata values as JSON.
    A named tuple: immutable, and cheaper to build than a frozen dataclass on get_session's
    path (the ``data`` benchmark's session row)."""

    session_id: str
    user_id: str
    created_us: int
    last_us: int
    fields: dict[str, str]

    def to_data(self) -> SessionData:
        # pydantic_core's parser: a tenth of json.loads' cost on these small values, which
        # matters on get_session's path (the ``data`` benchmark's session row).
        fields = self.fields
        try:
            metadata = {key: from_json(value) for key, value in fields.items()} if fields else {}
        except ValueError as exc:
            raise StateBackendError(
                f"session {self.session_id!r} holds a metadata value that is not JSON ({exc}); "
                "another program wrote or damaged it"
            ) from None
        return SessionData(
            self.session_id, self.user_id, _utc(self.created_us), _utc(self.last_us), metadata
        )


def check_user_id(user_id: object) -> str:
    """A non-empty ``str`` of at most MAX_ID_CHARS characters."""
    if not isinstance(user_id, str) or not user_id or len(user_id) > MAX_ID_CHARS:
        raise InvalidSessionError(
            f"user_id must be a non-empty str of at most {MAX_ID_CHARS} characters; "
            f"got {_show(user_id)}"
        )
    return user_id


def check_session_id(session_id: object) -> str:
    """A non-empty ``str`` of at most MAX_ID_CHARS characters."""
    if not isinstance(session_id, str) or not session_id or len(session_id) > MAX_ID_CHARS:
        raise InvalidSessionError(
            f"session_id must be a non-empty str of at most {MAX_ID_CHARS} characters; "
            f"got {_show(session_id)}"
        )
    return session_id


def encode_fields(values: object, limit: int, what: str) -> dict[str, str]:
    """A JSON object's top-level keys, each value encoded as JSON, within ``limit`` bytes."""
    if values is None:
        return {}
    if not isinstance(values, dict) or not all(isinstance(key, str) for key in values):
        raise InvalidSessionError(f"{what} must be a dict with str keys; got {_show(values)}")
    try:
        encoded = {key: json.dumps(value, allow_nan=False) for key, value in values.items()}
    except (TypeError, ValueError) as exc:
        raise InvalidSessionError(f"{what} must be JSON-serialisable: {exc}") from exc
    size = sum(len(key.encode()) + len(value.encode()) for key, value in encoded.items())
    if size > limit:
        raise InvalidSessionError(
            f"{what} is {size} bytes encoded, over max_metadata_bytes={limit}; store less"
        )
    return encoded


def _show(value: object) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:60]}{'...' if len(text) > 60 else ''}"
