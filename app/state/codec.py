"""The byte encodings both state backends store: JSON values, sessions and float32 vectors.

One implementation for both backends, so a value read back from memory equals the one read
back from Redis: ``decode(encode(v))``, never the stored object itself.

- values: compact ASCII JSON (``allow_nan=False``);
- sessions: ``b"<ttl_ms>:" + JSON object``; the TTL rides along so ``touch=True`` can renew it;
- embeddings: a little-endian uint32 dimension, then the vector as little-endian float32.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Sequence
from typing import Any, Final

import numpy as np
import structlog

from app.errors import StateArgumentError, StateArgumentTypeError, StateBackendError
from app.state.validation import show

__all__ = [
    "MAX_FLOAT32",
    "decode_json",
    "decode_session",
    "decode_vector",
    "encode_json",
    "encode_session",
    "encode_vector",
]

log = structlog.get_logger(__name__)

MAX_FLOAT32: Final = float(np.finfo(np.float32).max)
_ENCODER: Final = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True, allow_nan=False)
_DIM: Final = struct.Struct("<I")
_FLOAT32_LE: Final = np.dtype("<f4")


def _check_size(blob: bytes, arg: str, max_bytes: int) -> bytes:
    if len(blob) > max_bytes:
        raise StateArgumentError(
            f"{arg} encodes to {len(blob)} bytes, more than max_value_bytes={max_bytes}"
        )
    return blob


def encode_json(value: Any, arg: str, max_bytes: int) -> bytes:
    """Encode a JSON-serialisable, non-None ``value``.

    None or NaN/inf floats or a circular structure -> ValueError; a non-serialisable type ->
    TypeError; more than ``max_bytes`` -> ValueError.
    """
    if value is None:
        raise StateArgumentError(f"{arg} must not be None (None is what a missing key reads as)")
    try:
        text = _ENCODER.encode(value)
    except TypeError as exc:
        raise StateArgumentTypeError(
            f"{arg} must be JSON-serialisable, got {show(value)}: {exc}"
        ) from exc
    except ValueError as exc:
        raise StateArgumentError(
            f"{arg} must be JSON-serialisable, got {show(value)}: {exc}"
        ) from exc
    return _check_size(text.encode("ascii"), arg, max_bytes)


def decode_json(blob: bytes | str, key: str = "") -> Any:
    """Decode what :func:`encode_json` produced; anything else (a key another program wrote)
    is a ``StateBackendError`` naming ``key``, not a ``ValueError`` that blames the caller."""
    try:
        return json.loads(blob)
    except ValueError as exc:
        raise _foreign("value", key, f"{type(exc).__name__}: {exc}") from exc


def _foreign(kind: str, key: str, reason: str) -> StateBackendError:
    where = f" at {key!r}" if key else ""
    message = f"the stored {kind}{where} is not one this data layer wrote ({reason})"
    return StateBackendError(message)


def encode_session(data: Any, ttl_ms: int | None, max_bytes: int) -> bytes:
    """Encode a session dict together with its TTL (0 = none) for ``touch=True``."""
    if type(data) is not dict:
        raise StateArgumentTypeError(f"data must be a dict (a JSON object), got {show(data)}")
    body = encode_json(data, "data", max_bytes)
    return b"%d:" % (ttl_ms or 0) + body


def decode_session(blob: bytes, key: str = "") -> tuple[dict[str, Any], int | None]:
    """Split a stored session into its data and its TTL in milliseconds (None = no expiry).

    A blob :func:`encode_session` did not write is a ``StateBackendError`` naming ``key``.
    """
    head, _, body = blob.partition(b":")
    try:
        ttl_ms = int(head)
        data = json.loads(body)
    except ValueError as exc:
        raise _foreign("session", key, f"{type(exc).__name__}: {exc}") from exc
    if type(data) is not dict or ttl_ms < 0:
        raise _foreign("session", key, f"expected '<ttl_ms>:<JSON object>', got {show(blob)}")
    return data, (ttl_ms or None)


def encode_vector(vector: Sequence[float] | np.ndarray[Any, Any], max_bytes: int) -> bytes:
    """Encode a non-empty 1-D vector of finite numbers as dimension + little-endian float32."""
    if isinstance(vector, str | bytes | bytearray | memoryview | dict | set | frozenset):
        raise StateArgumentTypeError(
            f"vector must be a sequence or 1-D array of numbers, got {show(vector)}"
        )
    try:
        array = np.asarray(vector)
    except (ValueError, TypeError) as exc:  # ragged nesting and the like
        raise StateArgumentError(
            f"vector must be a 1-D sequence of numbers, got {show(vector)}"
        ) from exc
    if array.ndim == 0:
        raise StateArgumentTypeError(
            f"vector must be a sequence or 1-D array of numbers, got {show(vector)}"
        )
    if array.ndim != 1:
        raise StateArgumentError(f"vector must be 1-D, got an array of shape {array.shape}")
    if array.size == 0:
        raise StateArgumentError("vector must not be empty, got 0 elements")
    if array.dtype.kind not in "iuf":
        raise StateArgumentTypeError(
            f"vector elements must be real numbers (not bool), got dtype {array.dtype}"
            f" from {show(vector)}"
        )
    wide = array.astype(np.float64, copy=False)
    finite = np.isfinite(wide)
    if not finite.all():
        index = int(np.argmin(finite))
        raise StateArgumentError(
            f"vector must be finite, got {float(wide[index])!r} at index {index}"
        )
    peak = float(np.abs(wide).max())
    if peak > MAX_FLOAT32:
        raise StateArgumentError(
            f"vector values must fit in float32 (|x| <= {MAX_FLOAT32:g}), got {peak!r}"
        )
    blob = _DIM.pack(array.size) + wide.astype(_FLOAT32_LE).tobytes()
    return _check_size(blob, "vector", max_bytes)


def decode_vector(blob: bytes, key: str) -> list[float] | None:
    """Decode a stored vector; a corrupt blob logs a warning and reads as None."""
    if len(blob) >= _DIM.size:
        (dim,) = _DIM.unpack_from(blob)
        if dim > 0 and len(blob) == _DIM.size + 4 * dim:
            values = np.frombuffer(blob, dtype=_FLOAT32_LE, offset=_DIM.size)
            if np.isfinite(values).all():
                result: list[float] = values.tolist()
                return result
    log.warning("state.embedding_corrupt", key=key, size=len(blob))
    return None
