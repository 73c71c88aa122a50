"""Opaque listing cursors: a kind tag and the keyset values of the last row handed out.

A cursor is only a bookmark (base64url JSON), not a secret: it carries no authority. Its kind
tag makes a cursor of one listing useless for another (refused, not misread).
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from app.errors import InvalidCursorError

__all__ = ["decode_cursor", "encode_cursor"]

MAX_CURSOR_CHARS = 512


def encode_cursor(kind: str, values: list[Any]) -> str:
    raw = json.dumps([kind, *values], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(kind: str, token: str, arity: int) -> list[Any]:
    """The ``arity`` values of a cursor made by ``encode_cursor(kind, ...)``."""
    if len(token) > MAX_CURSOR_CHARS:
        raise InvalidCursorError(f"cursor is longer than {MAX_CURSOR_CHARS} characters")
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        decoded = json.loads(raw)
    except (binascii.Error, ValueError) as exc:
        raise InvalidCursorError(
            "cursor is not one this API handed out: pass next_cursor back unchanged"
        ) from exc
    if not (isinstance(decoded, list) and len(decoded) == arity + 1 and decoded[0] == kind):
        raise InvalidCursorError(
            f"cursor belongs to another listing (expected one of {kind!r}): "
            "pass next_cursor back with the same path and filters"
        )
    return decoded[1:]
