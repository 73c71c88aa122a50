"""Validation of everything callers hand to the vector index, before anything changes.

Each check returns the value in the form the index stores (a normalised ``float32`` copy
of a vector, a JSON copy of metadata) or raises a typed ``ValueError`` subclass whose
message names the argument, the expected form and what came.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import faiss
import numpy as np
import numpy.typing as npt

from app.errors import (
    DimensionMismatchError,
    InvalidIdentifierError,
    InvalidQueryError,
    InvalidVectorError,
)
from app.vectors.models import VectorRecord

__all__ = [
    "MAX_ID_BYTES",
    "MAX_METADATA_BYTES",
    "MAX_TOP_K",
    "NAMESPACE_PATTERN",
    "Batch",
    "InvalidQueryError",
    "Matrix",
    "Metadata",
    "check_id",
    "check_id_collection",
    "check_ids",
    "check_metadata",
    "check_namespace",
    "check_top_k",
    "encode_metadata",
    "normalised_vector",
    "prepare_batch",
    "scaled_matrix",
    "split_items",
]

Matrix = npt.NDArray[np.float32]
Metadata = dict[str, Any]

NAMESPACE_PATTERN: Final = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
MAX_ID_BYTES: Final = 512
MAX_METADATA_BYTES: Final = 64 * 1024
MAX_METADATA_DEPTH: Final = 32
MAX_TOP_K: Final = 100_000
# Squared norms outside (_TINY, inf) are recomputed in float64 from the values as given, so
# tiny or huge but finite components (float64 ones beyond float32's range too) still
# normalise exactly instead of under- or overflowing in float32.
_TINY: Final = 1e-30


def _where(row: int | None) -> str:
    return "" if row is None else f" at row {row}"


def check_namespace(namespace: object) -> str:
    """A namespace name matching ``[a-z0-9][a-z0-9_-]{0,63}`` (it becomes a file name)."""
    if not isinstance(namespace, str) or NAMESPACE_PATTERN.fullmatch(namespace) is None:
        msg = (
            f"namespace must match [a-z0-9][a-z0-9_-]{{0,63}} "
            f"(lower-case letters, digits, '_' and '-'), got {namespace!r}"
        )
        raise InvalidIdentifierError(msg)
    return namespace


def check_id(vector_id: object, *, row: int | None = None) -> str:
    """A vector id: a non-empty ``str`` of at most ``MAX_ID_BYTES`` UTF-8 bytes."""
    if not isinstance(vector_id, str) or not vector_id:
        msg = f"vector_id{_where(row)} must be a non-empty str, got {vector_id!r}"
        raise InvalidIdentifierError(msg)
    if "\x00" in vector_id:  # Postgres text cannot hold it: refused by both stores alike
        msg = f"vector_id{_where(row)} must not contain NUL (U+0000), got {vector_id!r}"
        raise InvalidIdentifierError(msg)
    if vector_id.isascii() and len(vector_id) <= MAX_ID_BYTES:  # one byte a character
        return vector_id
    try:
        size = len(vector_id.encode("utf-8"))
    except UnicodeEncodeError as exc:
        msg = f"vector_id{_where(row)} must be valid UTF-8 text, got {vector_id!r}"
        raise InvalidIdentifierError(msg) from exc
    if size > MAX_ID_BYTES:
        msg = f"vector_id{_where(row)} must be at most {MAX_ID_BYTES} UTF-8 bytes, got {size}"
        raise InvalidIdentifierError(msg)
    return vector_id


def _check_json(value: object, path: str, depth: int, row: int | None) -> None:
    if depth > MAX_METADATA_DEPTH:
        msg = f"metadata{_where(row)} is nested deeper than {MAX_METADATA_DEPTH} levels at {path}"
        raise InvalidIdentifierError(msg)
    if isinstance(value, str):
        if "\x00" in value:  # jsonb cannot hold it: refused by both stores alike
            msg = f"metadata{_where(row)} string at {path} must not contain NUL (U+0000)"
            raise InvalidIdentifierError(msg)
        return
    if value is None or isinstance(value, bool | int):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            msg = f"metadata{_where(row)} value at {path} must be a finite number, got {value!r}"
            raise InvalidIdentifierError(msg)
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str) or "\x00" in key:
                msg = f"metadata{_where(row)} keys must be str without NUL, got {key!r} at {path}"
                raise InvalidIdentifierError(msg)
            _check_json(item, f"{path}.{key}", depth + 1, row)
        return
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _check_json(item, f"{path}[{index}]", depth + 1, row)
        return
    msg = (
        f"metadata{_where(row)} value at {path} must be JSON (str, number, bool, None, "
        f"list or dict), got {type(value).__name__}"
    )
    raise InvalidIdentifierError(msg)


def _plain_dict(value: object) -> dict[str, Any]:
    """``json.dumps`` only knows ``dict``: other mappings (already checked) become one."""
    if isinstance(value, Mapping):
        return dict(value)
    msg = f"Object of type {type(value).__name__} is not JSON serializable"
    raise TypeError(msg)  # unreachable after _check_json; json.dumps' own wording


def check_metadata(metadata: object, *, row: int | None = None) -> Metadata | None:
    """``None`` or a JSON object; returns an independent copy (JSON round trip)."""
    if metadata is None:
        return None
    if not isinstance(metadata, Mapping):
        msg = f"metadata{_where(row)} must be a dict or None, got {type(metadata).__name__}"
        raise InvalidIdentifierError(msg)
    _check_json(metadata, "$", 0, row)
    # Compact, as encode_metadata: both stores accept the same sizes.
    encoded = json.dumps(
        metadata, ensure_ascii=False, allow_nan=False, separators=(",", ":"), default=_plain_dict
    )
    if len(encoded.encode("utf-8")) > MAX_METADATA_BYTES:
        msg = f"metadata{_where(row)} must encode to at most {MAX_METADATA_BYTES} bytes of JSON"
        raise InvalidIdentifierError(msg)
    copy: Metadata = json.loads(encoded)
    return copy


# One encoder for every call: json.dumps with options builds a new encoder each time.
_ENCODER: Final = json.JSONEncoder(
    ensure_ascii=False, allow_nan=False, separators=(",", ":"), default=_plain_dict
)
_SCALARS: Final = frozenset({str, int, float, bool, type(None)})
_STR_ONLY: Final = frozenset({str})


def encode_metadata(metadata: object, *, row: int | None = None) -> str | None:
    """``None`` or a JSON object, checked as :func:`check_metadata` does, returned encoded
    (compact JSON text) instead of copied: what a store that keeps JSON text needs.

    A flat ``dict`` of scalars (the common case) is encoded first and checked on the
    text: the encoder refuses NaN and infinity, and NUL shows as an escape. Anything else,
    and anything that fails there, takes the full walk, whose error names the problem.
    """
    if metadata is None:
        return None
    if (
        type(metadata) is dict
        and _STR_ONLY.issuperset(map(type, metadata))  # C loops: no generator per row
        and _SCALARS.issuperset(map(type, metadata.values()))
    ):
        try:
            encoded = _ENCODER.encode(metadata)
        except ValueError:
            encoded = None
        if encoded is not None and "\\u0000" not in encoded:
            _check_size(encoded, row)
            return encoded
    if not isinstance(metadata, Mapping):
        msg = f"metadata{_where(row)} must be a dict or None, got {type(metadata).__name__}"
        raise InvalidIdentifierError(msg)
    _check_json(metadata, "$", 0, row)
    encoded = _ENCODER.encode(metadata)
    _check_size(encoded, row)
    return encoded


def _check_size(encoded: str, row: int | None) -> None:
    # A character takes at most 4 UTF-8 bytes: short texts need no encoding to be measured.
    if len(encoded) > MAX_METADATA_BYTES // 4 and len(encoded.encode("utf-8")) > MAX_METADATA_BYTES:
        msg = f"metadata{_where(row)} must encode to at most {MAX_METADATA_BYTES} bytes of JSON"
        raise InvalidIdentifierError(msg)


def check_top_k(top_k: object) -> int:
    """``top_k``: an ``int`` from 1 to ``MAX_TOP_K`` (``bool`` rejected)."""
    if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= MAX_TOP_K:
        msg = f"top_k must be an int from 1 to {MAX_TOP_K}, got {top_k!r}"
        raise InvalidQueryError(msg)
    return top_k


def _as_real(value: object, what: str) -> npt.NDArray[Any]:
    """``value`` as an array of real numbers, in its own dtype (float64 from Python floats)."""
    if isinstance(value, np.ndarray):
        array: npt.NDArray[Any] = value
    else:
        try:
            array = np.asarray(value)
        except (ValueError, TypeError) as exc:
            msg = f"{what} must be a sequence of numbers: {exc}"
            raise InvalidVectorError(msg) from exc
    if array.dtype.kind not in "fiu":
        msg = f"{what} must contain real numbers, got dtype {array.dtype}"
        raise InvalidVectorError(msg)
    return array


def _to_float32(array: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """A C-contiguous float32 copy (none if it already is one); out-of-range values become
    inf or 0 here, and the slow path normalises those rows from ``array`` instead."""
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        converted: npt.NDArray[Any] = np.ascontiguousarray(array, dtype=np.float32)
    return converted


def _check_rows(vectors: object, dimension: int) -> None:
    """Name the first row of a nested sequence whose length is wrong (ragged input)."""
    if isinstance(vectors, np.ndarray) or not isinstance(vectors, Sequence):
        return
    for row, vector in enumerate(vectors):
        if isinstance(vector, Sequence | np.ndarray) and len(vector) != dimension:
            raise DimensionMismatchError(dimension, len(vector), row=row)


# From this size on, row norms use FAISS's SIMD kernel: 20k rows took 0.27 ms vs einsum's
# 0.65 ms at d=128, 5 ms vs 18 ms at d=1536. It releases the GIL, which a small batch run
# on the event loop must not risk (taking it back from a busy worker thread can take ms).
_FAISS_NORMS_MIN_CELLS: Final = 1 << 16


def _squared_norms(matrix: Matrix) -> Matrix:
    """Squared L2 norm of each row of a C-contiguous float32 matrix (float32 sums)."""
    rows, dimension = matrix.shape
    if rows * dimension < _FAISS_NORMS_MIN_CELLS:
        small: Matrix = np.einsum("ij,ij->i", matrix, matrix)
        return small
    squares = np.empty(rows, dtype=np.float32)
    faiss.fvec_norms_L2sqr(  # type: ignore[attr-defined]  # in the SWIG module, not the stubs
        faiss.swig_ptr(squares), faiss.swig_ptr(matrix), dimension, rows
    )
    return squares


def scaled_matrix(vectors: object, dimension: int) -> tuple[Matrix, Matrix]:
    """Check ``n x dimension`` finite, non-zero vectors; return ``(matrix, scale)``.

    ``matrix * scale[:, None]`` is the unit-norm batch. ``matrix`` is the caller's array
    when it already is C-contiguous float32 (no copy is made here: the store multiplies
    straight into its own rows); rows whose squared norm under- or overflows float32 are
    normalised in float64 in a copy and get scale 1.
    """
    _check_rows(vectors, dimension)
    given = _as_real(vectors, "vectors")
    matrix = _to_float32(given)
    if matrix.ndim != 2:
        msg = f"vectors must be a 2-D array (n, {dimension}), got shape {matrix.shape}"
        raise InvalidVectorError(msg)
    if matrix.shape[1] != dimension:
        raise DimensionMismatchError(dimension, matrix.shape[1])
    squares = _squared_norms(matrix)
    plain = np.isfinite(squares) & (squares > _TINY)
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = (1.0 / np.sqrt(squares)).astype(np.float32)
    if not plain.all():
        special = np.flatnonzero(~plain).tolist()
        fixed = [_normalised_slow(given[row], row) for row in special]
        matrix = matrix.copy()
        for row, vector in zip(special, fixed, strict=True):
            matrix[row] = vector
            scale[row] = 1.0
    return matrix, scale


def check_ids(ids: Sequence[object]) -> list[str]:
    """``check_id`` for a batch, with one fast pass for the common case of short str ids."""
    checked = list(ids)
    try:
        "".join(checked).encode("utf-8")  # type: ignore[arg-type]  # TypeError: not all str
    except (TypeError, UnicodeEncodeError):
        pass
    else:
        texts: list[str] = checked  # type: ignore[assignment]
        if "" not in texts and (not texts or max(map(len, texts)) * 4 <= MAX_ID_BYTES):
            return texts
    return [check_id(item, row=row) for row, item in enumerate(checked)]


def _normalised_slow(vector: npt.NDArray[Any], row: int | None) -> Matrix:
    """Normalise one row as given (before any float32 cast), scaled by its largest component
    first: finite values beyond float32's range keep their direction."""
    wide = vector.astype(np.float64)
    if not np.isfinite(wide).all():
        msg = f"vector{_where(row)} contains NaN or inf; every component must be finite"
        raise InvalidVectorError(msg)
    if not wide.any():
        msg = f"vector{_where(row)} is all zeros; cosine similarity needs a non-zero vector"
        raise InvalidVectorError(msg)
    scaled = wide / np.abs(wide).max()
    scaled /= np.sqrt(np.dot(scaled, scaled))
    result: Matrix = scaled.astype(np.float32)
    return result


def normalised_vector(vector: object, dimension: int) -> npt.NDArray[np.float32]:
    """One finite, non-zero vector of length ``dimension`` as a new unit-norm float32 array."""
    if type(vector) is np.ndarray and vector.dtype == np.float32:
        array: npt.NDArray[Any] = vector
        given = vector
    else:
        given = _as_real(vector, "vector")
        array = _to_float32(given)
    if array.ndim != 1:
        msg = f"vector must be 1-D with {dimension} components, got shape {array.shape}"
        raise InvalidVectorError(msg)
    if array.shape[0] != dimension:
        raise DimensionMismatchError(dimension, array.shape[0])
    # Not np.dot: it releases the GIL, and taking it back from a busy vectors worker thread
    # cost 13 us a call on average under load (einsum keeps it: 1.3 us).
    square = float(np.einsum("i,i->", array, array))
    if math.isfinite(square) and square > _TINY:
        result: npt.NDArray[np.float32] = array * np.float32(1.0 / math.sqrt(square))
        return result
    return _normalised_slow(given, None)


@dataclass(frozen=True)
class Batch:
    """A validated batch: unique ids (the last occurrence of a repeated id wins).

    Row ``i`` of the unit-norm batch is ``vectors[i] * scale[i]``.
    """

    ids: list[str]
    vectors: Matrix
    scale: Matrix
    metadata: list[Metadata | None]
    positions: dict[str, int]  # id -> its row in the batch


def _positions(ids: list[str]) -> dict[str, int]:
    return dict(zip(ids, range(len(ids)), strict=True))


def prepare_batch(
    ids: Sequence[object], vectors: object, metadata: Sequence[object] | None, dimension: int
) -> Batch:
    """Validate a whole batch (ids, metadata, then vectors) before anything changes."""
    count = len(ids)
    checked_ids = check_ids(ids)
    if metadata is None:
        checked_metadata: list[Metadata | None] = [None] * count
    else:
        if len(metadata) != count:
            msg = f"metadata must have one entry per id ({count}), got {len(metadata)}"
            raise InvalidIdentifierError(msg)
        checked_metadata = [check_metadata(item, row=row) for row, item in enumerate(metadata)]
    if count == 0 and isinstance(vectors, list | tuple) and not vectors:
        empty = np.empty((0, dimension), dtype=np.float32)
        return Batch([], empty, np.empty(0, dtype=np.float32), [], {})
    matrix, scale = scaled_matrix(vectors, dimension)
    if matrix.shape[0] != count:
        msg = f"vectors must have one row per id ({count}), got {matrix.shape[0]} rows"
        raise InvalidVectorError(msg)
    positions = _positions(checked_ids)  # a repeated id maps to its last row
    if len(positions) != count:
        keep = sorted(positions.values())
        checked_ids = [checked_ids[row] for row in keep]
        checked_metadata = [checked_metadata[row] for row in keep]
        matrix, scale = matrix[keep], scale[keep]
        positions = _positions(checked_ids)
    return Batch(checked_ids, matrix, scale, checked_metadata, positions)


T = TypeVar("T")


def check_id_collection(ids: T) -> T:
    """Reject a lone ``str`` where a collection of ids belongs (it would be one id per letter)."""
    if isinstance(ids, str | bytes):
        msg = f"ids must be a list of str ids, not a single {type(ids).__name__} {ids!r}"
        raise InvalidIdentifierError(msg)
    return ids


def split_items(items: Iterable[object]) -> tuple[list[Any], list[Any], list[Any]]:
    """Columns (ids, vectors, metadata) of ``upsert_many`` items: records or 2/3-tuples."""
    ids: list[Any] = []
    vectors: list[Any] = []
    metadata: list[Any] = []
    for position, item in enumerate(check_id_collection(items)):
        if isinstance(item, VectorRecord):
            ids.append(item.id)
            vectors.append(item.vector)
            metadata.append(item.metadata)
        elif isinstance(item, tuple) and len(item) in (2, 3):
            ids.append(item[0])
            vectors.append(item[1])
            metadata.append(item[2] if len(item) == 3 else None)
        else:
            msg = (
                f"items[{position}] must be a VectorRecord, (id, vector) or "
                f"(id, vector, metadata), got {type(item).__name__}"
            )
            raise InvalidVectorError(msg)
    return ids, vectors, metadata
