"""Argument checks shared by both state backends.

They run on every call, the rate limiter's hot path included, so each is a few type and
range comparisons. Every failure names the argument, what was expected and what came.

Both backends enforce the same caps, chosen from what Redis can represent exactly, so a call
that one backend accepts never fails differently on the other:

- durations (``ttl``, ``ttl_seconds``, ``window_seconds``): at most
  :data:`MAX_DURATION_SECONDS` = 2**53 ms in whole seconds (9,007,199,254,740 s, about
  285,000 years). The expiry in milliseconds then is an exact float and an integer far below
  Redis' limit of 2**63 ms after now, so ``SET PX`` and ``PEXPIRE`` always accept it;
- rate limits: at most :data:`MAX_LIMIT` = 2**53 - 1, the largest count a Lua number (a
  double) in the rate-limit script holds exactly;
- increment amounts: a signed 64-bit int, as ``INCRBY`` takes it (it never passes through a
  Lua number).
"""

from __future__ import annotations

import math
from typing import Any, Final

from app.errors import StateArgumentError, StateArgumentTypeError

__all__ = [
    "DEFAULT_MAX_VALUE_BYTES",
    "INT64_MAX",
    "INT64_MIN",
    "MAX_DURATION_SECONDS",
    "MAX_KEY_BYTES",
    "MAX_LIMIT",
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
MAX_DURATION_SECONDS: Final = 2**53 // 1000
"""The longest ttl / lease / window in seconds: 2**53 ms rounded down to whole seconds."""
MAX_LIMIT: Final = 2**53 - 1
"""The largest rate limit: every count up to it is exact as a Lua number."""
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
        raise StateArgumentError(f"max_value_bytes must be an int > 0, got {show(value)}")
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
    raise StateArgumentError(
        f"{arg} must be a non-empty str of at most {MAX_KEY_BYTES} UTF-8 bytes"
        f" (valid Unicode), got {show(value)}"
    )


def check_limit(value: Any) -> int:
    """Return ``value`` if it is an int in ``[0, MAX_LIMIT]`` (bool rejected), else ValueError."""
    if type(value) is int and 0 <= value <= MAX_LIMIT:
        return value
    raise StateArgumentError(
        f"limit must be an int >= 0 and <= {MAX_LIMIT} (2**53 - 1), got {show(value)}"
    )


def check_window(value: Any, arg: str = "window_seconds") -> float:
    """Return ``value`` as a float if it is a number in ``(0, MAX_DURATION_SECONDS]`` (bool
    rejected), else ValueError."""
    kind = type(value)
    if (kind is float or kind is int) and 0 < value <= MAX_DURATION_SECONDS:
        return float(value)
    raise StateArgumentError(
        f"{arg} must be a finite number > 0 and <= {MAX_DURATION_SECONDS} (seconds),"
        f" got {show(value)}"
    )


def _seconds(value: Any, arg: str, minimum: float, allow_none: bool) -> int | None:
    kind = type(value)
    if value is None and allow_none:
        return None
    if (kind is float or kind is int) and minimum <= value <= MAX_DURATION_SECONDS and value > 0:
        # value * 1000 <= 9_007_199_254_740_000 < 2**53: exact once rounded up to an integer
        ms: int = max(1, math.ceil(value * 1000))
        return ms
    lower = f">= {minimum:g}" if minimum else "> 0"
    expected = f"a finite number of seconds {lower} and <= {MAX_DURATION_SECONDS}"
    if allow_none:
        expected += ", or None"
    raise StateArgumentError(f"{arg} must be {expected}, got {show(value)}")


def check_ttl(value: Any, arg: str = "ttl") -> int | None:
    """Return a TTL in whole milliseconds (rounded up, at least 1), or None for no expiry.

    ``value`` must be a number of seconds in ``(0, MAX_DURATION_SECONDS]`` or None.
    """
    return _seconds(value, arg, 0.0, allow_none=True)


def check_lock_ttl(value: Any) -> int:
    """Return a lock lease in whole milliseconds; ``ttl_seconds`` must be a number in
    ``[0.001, MAX_DURATION_SECONDS]``."""
    ms = _seconds(value, "ttl_seconds", _MIN_LOCK_TTL, allow_none=False)
    assert ms is not None
    return ms


def check_owner(value: Any, default: str) -> str:
    """Return the lock owner: ``default`` for None, else a non-empty str (ValueError otherwise)."""
    if value is None:
        return default
    if type(value) is str and value:
        return value
    raise StateArgumentError(f"owner must be a non-empty str or None, got {show(value)}")


def check_amount(value: Any) -> int:
    """Return an increment amount: an int (bool rejected) within signed 64 bits."""
    if type(value) is not int:
        raise StateArgumentTypeError(f"amount must be an int, got {show(value)}")
    if not INT64_MIN <= value <= INT64_MAX:
        raise StateArgumentError(
            f"amount must be an int >= {INT64_MIN} and <= {INT64_MAX} (signed 64 bits),"
            f" got {show(value)}"
        )
    return value
