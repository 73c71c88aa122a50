"""``DataEvent``: the immutable event both buses carry."""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final
from uuid import UUID, SafeUUID

from app.errors import EventArgumentError, EventArgumentTypeError

__all__ = ["DataEvent", "copy_payload", "new_event_id"]

_ATOMIC: Final = frozenset({str, int, float, bool, type(None)})
_VERSION_4_MASK: Final = ~((0xF000 << 64) | (0xC000 << 48))
_VERSION_4_BITS: Final = (0x4000 << 64) | (0x8000 << 48)
_new_object = object.__new__
_set = object.__setattr__
_now = datetime.now
_typeof = type
# Event ids need uniqueness, not secrecy: the Mersenne Twister (seeded from the OS and
# reseeded after fork) is several times cheaper than the OS generator.
_random_bits = random.getrandbits
_UNKNOWN_SAFETY: Final = SafeUUID.unknown


def new_event_id() -> UUID:
    """A random (version 4) UUID, built without ``UUID``'s argument checks."""
    uid = _new_object(UUID)
    _set(uid, "int", (_random_bits(128) & _VERSION_4_MASK) | _VERSION_4_BITS)
    _set(uid, "is_safe", _UNKNOWN_SAFETY)
    return uid


def copy_payload(value: Any) -> Any:
    """A copy of ``value`` where every mapping, list and tuple is new (atoms are shared).

    Subclasses are copied too, into plain ``dict``/``list``/``tuple``: a caller's own
    container type must not keep a reference into the event (B1).
    """
    kind = type(value)
    if kind is dict:
        if _ATOMIC.issuperset(map(type, value.values())):
            return value.copy()  # flat: a shallow copy is a full copy
        return {k: v if type(v) in _ATOMIC else copy_payload(v) for k, v in value.items()}
    if kind is list or isinstance(value, list):
        return [v if type(v) in _ATOMIC else copy_payload(v) for v in value]
    if isinstance(value, Mapping):
        return {k: v if type(v) in _ATOMIC else copy_payload(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return tuple(v if type(v) in _ATOMIC else copy_payload(v) for v in value)
    return value


@dataclass(frozen=True, init=False, eq=True)
class DataEvent:
    """A change to a resource, published on an event bus.

    ``payload`` is copied at construction, so later changes to the caller's dict do not
    show. ``timestamp`` (default: now) must be timezone-aware and is stored in UTC.
    ``type`` is checked when the event is published (dot-separated words without ``*``,
    ``#`` or control characters such as CR and LF, at most 255 UTF-8 bytes). ``id`` is
    generated and is the dedupe key.
    Handlers receive an equal copy, never the published object.
    """

    type: str
    resource: str
    key: str
    payload: dict[str, Any] = field(default_factory=dict)
    source: str = ""
    timestamp: datetime = field(default_factory=lambda: datetime.now(UTC))
    version: int | None = None
    id: UUID = field(default_factory=new_event_id)

    def __init__(  # noqa: PLR0917 - the original design's positional fields
        self,
        type: str,
        resource: str,
        key: str,
        payload: Mapping[str, Any] | None = None,
        source: str = "",
        timestamp: datetime | None = None,
        version: int | None = None,
        id: UUID | None = None,
    ) -> None:
        if payload is None:
            payload = {}
        elif _typeof(payload) is not dict and not isinstance(payload, Mapping):
            raise EventArgumentTypeError(
                f"payload must be a mapping (a JSON object), got {_kind(payload)}"
            )
        if not (
            _typeof(type) is str
            and _typeof(resource) is str
            and _typeof(key) is str
            and _typeof(source) is str
        ):
            for name, value in (
                ("type", type),
                ("resource", resource),
                ("key", key),
                ("source", source),
            ):
                if not isinstance(value, str):
                    raise EventArgumentTypeError(f"{name} must be a str, got {_kind(value)}")
        if timestamp is None:
            timestamp = _now(UTC)
        elif _typeof(timestamp) is not datetime or timestamp.tzinfo is not UTC:
            timestamp = _as_utc(timestamp)
        if version is not None and _typeof(version) is not int:
            raise EventArgumentTypeError(f"version must be an int or None, got {_kind(version)}")
        if id is None:
            id = new_event_id()
        elif _typeof(id) is not UUID:
            raise EventArgumentTypeError(f"id must be a uuid.UUID, got {_kind(id)}")
        _set(
            self,
            "__dict__",
            {
                "type": type,
                "resource": resource,
                "key": key,
                "payload": copy_payload(payload),
                "source": source,
                "timestamp": timestamp,
                "version": version,
                "id": id,
            },
        )

    def __hash__(self) -> int:
        return hash(self.id)


def _kind(value: object) -> str:
    return value.__class__.__name__


def _as_utc(timestamp: object) -> datetime:
    if not isinstance(timestamp, datetime):
        raise EventArgumentTypeError(f"timestamp must be a datetime, got {_kind(timestamp)}")
    if timestamp.tzinfo is None or timestamp.utcoffset() is None:
        raise EventArgumentError(f"timestamp must be timezone-aware, got naive {timestamp!r}")
    return timestamp.astimezone(UTC)
