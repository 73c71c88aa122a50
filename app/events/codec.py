"""The one JSON codec of both buses: event <-> envelope bytes, with the publish-time checks.

The envelope is a JSON object with the fields of :class:`DataEvent`; ``timestamp`` is
ISO 8601 with offset, ``id`` the canonical UUID string. Output is ASCII (non-ASCII is
escaped), so its length in characters is its size in bytes. ``encode`` is the only place
that checks ``type`` (B3, which also refuses control characters: a type is written raw
into line-based outputs such as the server-sent event stream), serialisability (B2) and
size (B4); both buses call it.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from json.encoder import (  # type: ignore[attr-defined]
    c_make_encoder,
    encode_basestring_ascii,
)
from typing import Any, Final, NamedTuple
from uuid import UUID, SafeUUID

from app.errors import (
    EventArgumentError,
    EventSerializationError,
    EventTooLargeError,
    MalformedEventError,
)
from app.events.model import DataEvent
from app.events.topics import MAX_TOPIC_BYTES

__all__ = [
    "CONTENT_TYPE",
    "DEFAULT_MAX_EVENT_BYTES",
    "EncodedEvent",
    "decode",
    "decode_payload",
    "encode",
    "encode_payload",
    "envelope_size",
    "handler_copy",
    "handler_copy_item",
    "prepare",
    "validate_type",
]

CONTENT_TYPE: Final = "application/json"
DEFAULT_MAX_EVENT_BYTES: Final = 1024 * 1024
_TYPE_RE: Final = re.compile(r"[^.*#]+(?:\.[^.*#]+)*")
# Control characters (C0, DEL, C1): CR and LF would end a line of any line-based consumer
# (a server-sent event stream, a log), and none of them belongs in a word.
_CONTROL_RE: Final = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_ENVELOPE_FIELDS: Final = frozenset(
    {"id", "type", "resource", "key", "source", "timestamp", "version", "payload"}
)


def _reject(value: object) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


# The C encoder without JSONEncoder's per-call Python overhead. No circular-reference
# markers: a cycle ends in RecursionError, reported as EventSerializationError.
_encode_chunks = c_make_encoder(
    None, _reject, encode_basestring_ascii, None, ":", ",", False, False, False
)
_scan_once = json.JSONDecoder().scan_once  # type: ignore[attr-defined]
_new_object = object.__new__
_set_attribute = object.__setattr__
_fromisoformat = datetime.fromisoformat
_canonical_uuid = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
).fullmatch
_UNKNOWN_SAFETY: Final = SafeUUID.unknown
_ENVELOPE_OVERHEAD: Final = len(
    '{"id":"","type":,"resource":,"key":,"source":,"timestamp":"","version":,"payload":}'
)
_UUID_CHARS: Final = 36
# A str of n characters escapes to at most 12n ASCII characters (\\ud83d\\ude00 per
# astral character) plus its quotes; the ISO timestamp is at most 32 characters.
_MAX_ESCAPE: Final = 12
_FIXED_UPPER: Final = _ENVELOPE_OVERHEAD + _UUID_CHARS + 4 * 2 + 32
_valid_types: set[str] = set()
_VALID_TYPES_KEPT: Final = 10_000


class EncodedEvent(NamedTuple):
    """An envelope as bytes, and the payload's JSON (for in-process copies)."""

    body: bytes
    payload_json: str


def validate_type(event_type: str) -> None:
    """Raise ``ValueError`` unless ``event_type`` is dot-separated words (no ``*``, ``#``
    or control characters such as CR and LF), <= 255 bytes."""
    if event_type in _valid_types:
        return
    control = _CONTROL_RE.search(event_type)
    if control is not None:
        raise EventArgumentError(
            "event type must be dot-separated words without control characters (such as CR "
            f"or LF), got {control.group()!r} at index {control.start()} in {event_type!r}"
        )
    if _TYPE_RE.fullmatch(event_type) is None:
        raise EventArgumentError(
            "event type must be dot-separated non-empty words without '*' or '#', "
            f"got {event_type!r}"
        )
    if len(event_type) > MAX_TOPIC_BYTES // 4 or not event_type.isascii():
        size = len(event_type.encode("utf-8"))
        if size > MAX_TOPIC_BYTES:
            raise EventArgumentError(
                f"event type must be at most {MAX_TOPIC_BYTES} UTF-8 bytes, got {size}"
            )
    if len(_valid_types) >= _VALID_TYPES_KEPT:
        _valid_types.clear()
    _valid_types.add(event_type)


def encode_payload(event: DataEvent) -> str:
    """The payload's JSON; ``EventSerializationError`` if it has no JSON form."""
    try:
        return "".join(_encode_chunks(event.payload, 0))
    except (TypeError, ValueError, RecursionError) as exc:
        raise EventSerializationError(
            f"payload of event {event.type!r} is not JSON-serialisable: {exc}"
        ) from exc


def _timestamp_text(timestamp: datetime) -> str:
    return timestamp.isoformat()


def _timestamp_chars(timestamp: datetime) -> int:
    """``len(timestamp.isoformat())`` for a UTC timestamp, without formatting it."""
    if timestamp.utcoffset():
        return len(timestamp.isoformat())
    return 32 if timestamp.microsecond else 25


def envelope_size(event: DataEvent, payload_json: str) -> int:
    """The byte size of ``encode(event)`` (ASCII output), computed without building it."""
    version = event.version
    return (
        _ENVELOPE_OVERHEAD
        + _UUID_CHARS
        + len(encode_basestring_ascii(event.type))
        + len(encode_basestring_ascii(event.resource))
        + len(encode_basestring_ascii(event.key))
        + len(encode_basestring_ascii(event.source))
        + _timestamp_chars(event.timestamp)
        + (4 if version is None else len(str(version)))
        + len(payload_json)
    )


def _check_size(event: DataEvent, size: int, max_event_bytes: int) -> None:
    if size > max_event_bytes:
        raise EventTooLargeError(
            f"event {event.type!r} encodes to {size} bytes, over max_event_bytes={max_event_bytes}"
        )


def prepare(event: DataEvent, max_event_bytes: int) -> str:
    """Every publish-time check of ``encode`` (type, JSON, size); returns the payload JSON.

    The in-process bus uses this: handlers get the event's immutable fields and a payload
    decoded from this JSON, which is exactly what ``decode(encode(event))`` would give.
    """
    fields = event.__dict__  # one dict lookup per field instead of attribute access
    event_type = fields["type"]
    if event_type not in _valid_types:
        validate_type(event_type)
    try:
        payload_json = "".join(_encode_chunks(fields["payload"], 0))
    except (TypeError, ValueError, RecursionError):
        payload_json = encode_payload(event)  # raises EventSerializationError
    version = fields["version"]
    upper = (
        _FIXED_UPPER
        + _MAX_ESCAPE
        * (len(event_type) + len(fields["resource"]) + len(fields["key"]) + len(fields["source"]))
        + (4 if version is None else len(str(version)))
        + len(payload_json)
    )
    if upper > max_event_bytes:  # near the limit: compute the exact size
        _check_size(event, envelope_size(event, payload_json), max_event_bytes)
    return payload_json


def encode(event: DataEvent, max_event_bytes: int) -> EncodedEvent:
    """Check and encode ``event``; raises ``ValueError``, ``EventSerializationError`` or
    ``EventTooLargeError`` (the same checks as :func:`prepare`)."""
    validate_type(event.type)
    payload_json = encode_payload(event)
    version = event.version
    body = (
        f'{{"id":"{event.id}","type":{encode_basestring_ascii(event.type)},'
        f'"resource":{encode_basestring_ascii(event.resource)},'
        f'"key":{encode_basestring_ascii(event.key)},'
        f'"source":{encode_basestring_ascii(event.source)},'
        f'"timestamp":"{_timestamp_text(event.timestamp)}",'
        f'"version":{"null" if version is None else str(version)},'
        f'"payload":{payload_json}}}'
    )
    _check_size(event, len(body), max_event_bytes)
    return EncodedEvent(body.encode("ascii"), payload_json)


def decode_payload(payload_json: str) -> Any:
    """Decode a payload this module encoded (trusted input: one C scan, no checks)."""
    return _scan_once(payload_json, 0)[0]


def handler_copy_item(item: tuple[DataEvent, str]) -> DataEvent:
    """``handler_copy(*item)`` in one call (the in-process dispatcher's ``decode``)."""
    fields = item[0].__dict__.copy()
    fields["payload"] = _scan_once(item[1], 0)[0]
    copy = _new_object(DataEvent)
    _set_attribute(copy, "__dict__", fields)
    return copy


def handler_copy(event: DataEvent, payload_json: str) -> DataEvent:
    """What ``decode(encode(event))`` gives, from ``prepare``'s payload JSON: the event's
    immutable fields and a freshly decoded payload (the in-process bus's hot path)."""
    fields = event.__dict__.copy()
    fields["payload"] = _scan_once(payload_json, 0)[0]
    copy = _new_object(DataEvent)
    _set_attribute(copy, "__dict__", fields)
    return copy


def decode(body: bytes | str) -> DataEvent:
    """Decode an envelope from the wire; raises ``MalformedEventError`` saying what is wrong.

    The hot path (an envelope as ``encode`` writes it) runs one C scan and type checks
    inline; anything else takes :func:`_decode_checked`, which says what is wrong.
    """
    try:
        text = body.decode("utf-8") if isinstance(body, bytes) else body
        data, end = _scan_once(text, 0)
    except (StopIteration, ValueError, TypeError, RecursionError):
        return _decode_checked(body)
    if end != len(text) or type(data) is not dict or data.keys() != _ENVELOPE_FIELDS:
        return _decode_checked(body)
    event_id = data["id"]
    event_type = data["type"]
    stamp = data["timestamp"]
    version = data["version"]
    if not (
        type(event_id) is str
        and type(event_type) is str
        and type(data["resource"]) is str
        and type(data["key"]) is str
        and type(data["source"]) is str
        and type(stamp) is str
        and type(data["payload"]) is dict
        and (version is None or type(version) is int)
        and event_type in _valid_types
        and _canonical_uuid(event_id) is not None
    ):
        return _decode_checked(body)
    try:
        timestamp = _fromisoformat(stamp)
    except ValueError:
        return _decode_checked(body)
    zone = timestamp.tzinfo
    if zone is not UTC:
        if zone is None:
            return _decode_checked(body)
        timestamp = timestamp.astimezone(UTC)
    # Every field is checked and the payload is fresh from the scan: no copy needed.
    uid = _new_object(UUID)
    _set_attribute(uid, "int", int(event_id.replace("-", ""), 16))
    _set_attribute(uid, "is_safe", _UNKNOWN_SAFETY)
    data["id"] = uid
    data["timestamp"] = timestamp
    event = _new_object(DataEvent)
    _set_attribute(event, "__dict__", data)
    return event


def _decode_checked(body: bytes | str) -> DataEvent:
    """``decode`` for any input, checking each field in turn and saying what is wrong."""
    try:
        # Decoding first skips json.loads' encoding detection (about 1 us per message).
        data = json.loads(body.decode("utf-8") if isinstance(body, bytes) else body)
    except (ValueError, TypeError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise MalformedEventError(f"message body is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise MalformedEventError(f"message body must be a JSON object, got {type(data).__name__}")
    keys = data.keys()
    if keys != _ENVELOPE_FIELDS:
        missing = sorted(_ENVELOPE_FIELDS - keys)
        extra = sorted(keys - _ENVELOPE_FIELDS)
        raise MalformedEventError(
            f"message body is not an event envelope: missing fields {missing}, "
            f"unexpected fields {extra}"
        )
    for name in ("id", "type", "resource", "key", "source", "timestamp"):
        if not isinstance(data[name], str):
            raise MalformedEventError(
                f"envelope field {name!r} must be a string, got {type(data[name]).__name__}"
            )
    if not isinstance(data["payload"], dict):
        raise MalformedEventError(
            f"envelope field 'payload' must be an object, got {type(data['payload']).__name__}"
        )
    version = data["version"]
    if version is not None and type(version) is not int:
        raise MalformedEventError(
            f"envelope field 'version' must be an integer or null, got {version!r}"
        )
    try:
        validate_type(data["type"])
        event_id = UUID(data["id"])
        timestamp = datetime.fromisoformat(data["timestamp"])
    except ValueError as exc:
        raise MalformedEventError(f"envelope has an invalid field: {exc}") from exc
    if timestamp.tzinfo is None:
        raise MalformedEventError(
            f"envelope field 'timestamp' must carry an offset, got {data['timestamp']!r}"
        )
    # Every field is checked and the payload is fresh from json.loads: no copy needed.
    data["id"] = event_id
    data["timestamp"] = timestamp if timestamp.tzinfo is UTC else timestamp.astimezone(UTC)
    event = _new_object(DataEvent)
    _set_attribute(event, "__dict__", data)
    return event
