"""Argument checks shared by both state backends.

They run on every call, the rate limiter's hot path included, so each is a few type and
range comparisons. Every failure names the argument, what was expected and what came.
"""

from __future__ import annotations

import math
from typing import Any, Final

__all__ = [
    "DEFAULT_MAX_VALUE_BYTES",
    "INT64_MAX",
    "INT64_MIN",
    "MAX_KEY_BYTES",
    "check_amount",
    "check_key",
    "check_limit",
    "check_lock_ttl",
    "check_max_value_bytes",
    "check_owner",
    "check_ttl",
    "check_window",
    "show",
]

MAX_KEY_BYTES: Final = 1024
DEFAULT_MAX_VALUE_BYTES: Final = 1024 * 1024
INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1
_MIN_LOCK_TTL: Final = 0.001


def show(value: object) -> str:
    """A short description of a rejected value for error messages: type and clipped repr."""
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(value).__name__} {text}"


def check_max_value_bytes(value: Any) -> int:
    """The largest encoded value a backend stores: an ``int`` > 0."""
    if type(value) is not int or value <= 0:
        raise ValueError(f"max_value_bytes must be an int > 0, got {show(value)}")
    return value


def check_key(value: Any, arg: str = "key") -> str:
    """Return ``value`` if it is a non-empty str of at most 1024 UTF-8 bytes, else ValueError.

    Lone surrogates are rejected too: they have no UTF-8 form, so Redis could not store them.
    """
    if type(value) is str and value:
        if value.isascii():
            if len(value) <= MAX_KEY_BYTES:
                return value
        else:
            try:
                size = len(value.encode("utf-8"))
            except UnicodeEncodeError:
                size = -1
            if 0 < size <= MAX_KEY_BYTES:
                return value
    raise ValueError(
        f"{arg} must be a non-empty str of at most {MAX_KEY_BYTES} UTF-8 bytes"
        f" (valid Unicode), got {show(value)}"
    )


def check_limit(value: Any) -> int:
    """Return ``value`` if it is an int >= 0 (bool rejected), else ValueError."""
    if type(value) is int and value >= 0:
        return value
    raise ValueError(f"limit must be an int >= 0, got {show(value)}")


def check_window(value: Any, arg: str = "window_seconds") -> float:
    """Return ``value`` as a float if it is a finite number > 0 (bool rejected), else ValueError."""
    kind = type(value)
    if (kind is float or kind is int) and 0 < value < math.inf:
        return float(value)
    raise ValueError(f"{arg} must be a finite number > 0, got {show(value)}")


def _seconds(value: Any, arg: str, minimum: float, allow_none: bool) -> int | None:
    kind = type(value)
    if value is None and allow_none:
        return None
    if (kind is float or kind is int) and minimum <= value < math.inf and value > 0:
        ms: int = max(1, math.ceil(value * 1000))
        return ms
    expected = (
        f"a finite number of seconds >= {minimum:g}"
        if minimum
        else "a finite number of seconds > 0"
    )
    if allow_none:
        expected += " or None"
    raise ValueError(f"{arg} must be {expected}, got {show(value)}")


def check_ttl(value: Any, arg: str = "ttl") -> int | None:
    """Return a TTL in whole milliseconds (rounded up, at least 1), or None for no expiry."""
    return _seconds(value, arg, 0.0, allow_none=True)


def check_lock_ttl(value: Any) -> int:
    """Return a lock lease in whole milliseconds; ``ttl_seconds`` must be finite and >= 0.001."""
    ms = _seconds(value, "ttl_seconds", _MIN_LOCK_TTL, allow_none=False)
    assert ms is not None
    return ms


def check_owner(value: Any, default: str) -> str:
    """Return the lock owner: ``default`` for None, else a non-empty str (ValueError otherwise)."""
    if value is None:
        return default
    if type(value) is str and value:
        return value
    raise ValueError(f"owner must be a non-empty str or None, got {show(value)}")


def check_amount(value: Any) -> int:
    """Return an increment amount: an int (bool rejected) within signed 64 bits."""
    if type(value) is not int:
        raise TypeError(f"amount must be an int, got {show(value)}")
    if not INT64_MIN <= value <= INT64_MAX:
        raise ValueError(f"amount must fit in a signed 64-bit integer, got {value}")
    return value
