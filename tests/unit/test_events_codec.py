"""The one JSON codec: round trips, the size it predicts, and what it refuses."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.errors import EventSerializationError, EventTooLargeError
from app.events import DataEvent, MalformedEventError
from app.events.codec import (
    _decode_checked,
    decode,
    decode_payload,
    encode,
    envelope_size,
    handler_copy,
    prepare,
    validate_type,
)

JSON_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
JSON = st.recursive(
    JSON_LEAVES,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=12,
)
TEXT = st.text(max_size=20)
# What an in-process component could put in a type to forge a server-sent event.
FORGED_TYPE = 'order\ndata: {"forged": true}\n\nevent: admin'


@given(
    payload=st.dictionaries(st.text(max_size=8), JSON, max_size=5),
    resource=TEXT,
    key=TEXT,
    source=TEXT,
    version=st.none() | st.integers(),
    micro=st.integers(0, 999_999),
    offset=st.integers(-12, 12),
)
def test_round_trip_and_predicted_size(
    payload: dict[str, Any],
    resource: str,
    key: str,
    source: str,
    version: int | None,
    micro: int,
    offset: int,
) -> None:
    """decode(encode(e)) == e, the in-process copy equals it too, and envelope_size is exact."""
    stamp = datetime(2026, 3, 4, 5, 6, 7, micro, tzinfo=timezone(timedelta(hours=offset)))
    sent = DataEvent("a.b", resource, key, payload, source, stamp, version)
    encoded = encode(sent, 10**7)
    assert decode(encoded.body) == sent
    assert handler_copy(sent, prepare(sent, 10**7)) == sent
    assert envelope_size(sent, encoded.payload_json) == len(encoded.body)
    assert encoded.body.isascii()


def test_json_semantics_are_those_of_the_wire() -> None:
    """Tuples come back as lists and non-string keys as strings, in both copies."""
    sent = DataEvent("a", "r", "k", {"t": (1, 2), "d": {1: "x"}})
    expected = {"t": [1, 2], "d": {"1": "x"}}
    assert decode(encode(sent, 10**6).body).payload == expected
    assert decode_payload(prepare(sent, 10**6)) == expected


@pytest.mark.parametrize("bad", [{"x": {1, 2}}, {"x": float("inf")}, {("a",): 1}, {"x": b"raw"}])
def test_unserialisable_payloads_raise_event_serialization_error(bad: dict[Any, Any]) -> None:
    """Sets, non-finite floats, tuple keys and bytes raise EventSerializationError."""
    with pytest.raises(EventSerializationError, match="'a'"):
        prepare(DataEvent("a", "r", "k", bad), 10**6)


def test_size_limit_is_exact() -> None:
    """An event exactly at max_event_bytes passes; one byte more raises EventTooLargeError."""
    sent = DataEvent("a", "r", "k", {"s": "x"}, timestamp=datetime(2026, 1, 1, tzinfo=UTC))
    size = len(encode(sent, 10**6).body)
    prepare(sent, size)
    encode(sent, size)
    with pytest.raises(EventTooLargeError, match=f"{size} bytes"):
        prepare(sent, size - 1)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", "not JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"id": "x"}', "missing fields"),
        (b"\xff\xfe", "not JSON"),
    ],
)
def test_malformed_bodies_raise_malformed_event_error(body: bytes, reason: str) -> None:
    """Bodies that are not our envelope raise MalformedEventError saying what is wrong."""
    with pytest.raises(MalformedEventError, match=reason):
        decode(body)


def test_envelope_with_a_bad_field_is_malformed() -> None:
    """A wrong id, naive timestamp or bad type inside an otherwise valid envelope is malformed."""
    good = encode(DataEvent("a", "r", "k"), 10**6).body.decode()
    sent = DataEvent("a", "r", "k")
    for old, new in (
        (str(sent.id)[:8], "zzzzzzzz"),
        ("+00:00", ""),
        ('"type":"a"', '"type":"a.*"'),
        ('"version":null', '"version":"1"'),
    ):
        broken = encode(sent, 10**6).body.decode().replace(old, new)
        assert broken != good
        with pytest.raises(MalformedEventError):
            decode(broken)


@pytest.mark.parametrize(
    "bad_type",
    [FORGED_TYPE, "a\rb", "a\r\nb", "a.b\n", "\na", "a\x00b", "a\tb", "a\x1bb", "a\x7fb", "a\x85b"],
)
def test_types_with_control_characters_are_refused(bad_type: str) -> None:
    """A type with a control character (CR, LF, NUL, ...) is a ValueError naming it, everywhere."""
    with pytest.raises(ValueError, match="control character") as raised:
        validate_type(bad_type)
    assert repr(bad_type) in str(raised.value)
    sent = DataEvent(bad_type, "r", "k")
    with pytest.raises(ValueError, match="control character"):
        prepare(sent, 10**6)
    with pytest.raises(ValueError, match="control character"):
        encode(sent, 10**6)


def test_types_of_printable_unicode_words_are_still_valid() -> None:
    """Refusing control characters leaves printable words alone, spaces and non-ASCII included."""
    for good in ("order.placed", "ünï.cödé", "a b.c", "x" * 255):
        validate_type(good)


def test_an_envelope_whose_type_holds_a_line_break_is_malformed() -> None:
    """A foreign envelope with CR or LF in its type is a MalformedEventError, never an event."""
    body = encode(DataEvent("order", "r", "k"), 10**6).body.decode()
    for forged in (FORGED_TYPE, "order\rdata: x"):
        broken = body.replace('"type":"order"', f'"type":{json.dumps(forged)}')
        assert broken != body
        with pytest.raises(MalformedEventError, match="control character"):
            decode(broken)


def test_event_constructor_checks_field_types() -> None:
    """Non-str fields, a non-mapping payload, a non-int version and a naive time are refused."""
    with pytest.raises(TypeError, match="resource must be a str"):
        DataEvent("a", 1, "k")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="payload must be a mapping"):
        DataEvent("a", "r", "k", [1])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="version must be an int"):
        DataEvent("a", "r", "k", version="1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timezone-aware"):
        DataEvent("a", "r", "k", timestamp=datetime(2026, 1, 1))


def _outcome(decoder: Any, body: bytes) -> tuple[str, Any]:
    try:
        event = decoder(body)
    except MalformedEventError as exc:
        return ("error", str(exc))
    return ("event", (event, event.id, event.timestamp, event.version, event.payload))


@given(
    payload=st.dictionaries(st.text(max_size=8), JSON, max_size=4),
    key=TEXT,
    position=st.integers(min_value=0),
    replacement=st.sampled_from([b"", b"x", b"0", b'"', b"{", b"}", b",", b" ", b"\\", b"-"]),
)
def test_fast_decode_agrees_with_the_checked_decoder(
    payload: dict[str, Any], key: str, position: int, replacement: bytes
) -> None:
    """decode's fast path gives what the full check gives, for envelopes and mutations of them."""
    body = encode(DataEvent("user.created", "users", key, payload), 1 << 20).body
    assert _outcome(decode, body) == _outcome(_decode_checked, body)
    at = position % len(body)
    mutated = body[:at] + replacement + body[at + 1 :]
    assert _outcome(decode, mutated) == _outcome(_decode_checked, mutated)
