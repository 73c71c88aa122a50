"""Loading a snapshot (layout in ``snapshot.py``): verify everything, trust nothing.

``.npy`` headers are parsed with ``numpy.lib.format`` and only ``<f4`` C-order arrays of
the manifest's shape are accepted (never pickle, never ``faiss.read_index``); sizes, the
checksum of every file (xxh3-128 from format version 3, sha256 before; the manifest's
sha256 is held by the pointer), counts and ids are checked. Any mismatch raises
:class:`SnapshotCorruptError` with the path and the reason.

The vector files (shards) are read and checksummed on ``SHARDS_MAX`` threads, each
straight into its rows of the namespace's matrix, chunk by chunk (a chunk is checksummed
while it is still in the CPU cache); the records are read meanwhile on the calling thread.
"""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

import numpy as np
import xxhash

from app.errors import SnapshotCorruptError
from app.vectors.snapshot import (
    CHECKSUM,
    FORMAT,
    FORMAT_VERSION,
    MANIFEST,
    SHARDS_MAX,
    read_pointer,
    vector_file_name,
)
from app.vectors.store import NamespaceStore
from app.vectors.validation import Matrix, Metadata, check_ids, check_namespace

__all__ = ["READ_CHUNK", "read_snapshot"]

READ_CHUNK: Final = 1 << 20
READABLE_VERSIONS: Final = (1, 2, FORMAT_VERSION)
# The checksum each format version writes per file (the manifest key, and its function).
CHECKSUMS: Final = {1: "sha256", 2: "sha256", FORMAT_VERSION: CHECKSUM}


class _Digest(Protocol):
    def update(self, data: bytes | memoryview, /) -> None: ...
    def hexdigest(self) -> str: ...


def _digest(algorithm: str) -> _Digest:
    if algorithm == CHECKSUM:
        return xxhash.xxh3_128()
    return hashlib.sha256()


def _check_file(folder: Path, spec: object, expected_name: str, algorithm: str) -> Path:
    if (
        not isinstance(spec, dict)
        or spec.get("file") != expected_name
        or not isinstance(spec.get("bytes"), int)
        or not isinstance(spec.get(algorithm), str)
    ):
        reason = f"bad file entry for {expected_name} (expected file, bytes and {algorithm})"
        raise SnapshotCorruptError(str(folder / MANIFEST), reason)
    path = folder / expected_name
    try:
        size = path.stat().st_size
    except FileNotFoundError as exc:
        raise SnapshotCorruptError(str(path), "file listed in the manifest is missing") from exc
    if size != spec["bytes"]:
        raise SnapshotCorruptError(str(path), f"size {size} bytes, manifest says {spec['bytes']}")
    return path


@dataclass(frozen=True)
class _Shard:
    """One vector file to read into ``rows`` rows of its namespace's matrix from ``start``."""

    path: Path
    spec: dict[str, Any]
    start: int
    rows: int
    algorithm: str  # the manifest key of the file's checksum


def _shards(
    folder: Path, namespace: str, entry: dict[str, Any], count: int, algorithm: str
) -> list[_Shard]:
    """The vector files the manifest lists for ``namespace``, checked against ``count``."""
    specs = entry.get("vectors")
    if isinstance(specs, dict):  # format version 1: one file, all rows
        specs = [{**specs, "rows": count}]
    if not isinstance(specs, list) or not specs:
        reason = f"vectors of {namespace!r} must be a non-empty list of files"
        raise SnapshotCorruptError(str(folder / MANIFEST), reason)
    shards, start = [], 0
    for position, spec in enumerate(specs):
        rows = spec.get("rows") if isinstance(spec, dict) else None
        if not isinstance(rows, int) or isinstance(rows, bool) or rows < 0:
            reason = f"bad rows for vector file {position} of {namespace!r}"
            raise SnapshotCorruptError(str(folder / MANIFEST), reason)
        name = vector_file_name(namespace, position, len(specs))
        path = _check_file(folder, spec, name, algorithm)
        shards.append(_Shard(path, spec, start, rows, algorithm))
        start += rows
    if start != count:
        reason = f"vector files of {namespace!r} hold {start} rows, manifest count {count}"
        raise SnapshotCorruptError(str(folder / MANIFEST), reason)
    return shards


def _read_shard(shard: _Shard, matrix: Matrix) -> None:
    """Read one vector file into its rows of ``matrix``, verifying header, size and checksum."""
    path, dimension = shard.path, matrix.shape[1]
    with path.open("rb", buffering=0) as handle:
        try:
            version = np.lib.format.read_magic(handle)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(handle)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(handle)
            else:
                shape, fortran, dtype = (), True, np.dtype("O")
        except ValueError as exc:
            raise SnapshotCorruptError(str(path), f"bad .npy header: {exc}") from exc
        if dtype != np.dtype("<f4") or fortran or shape != (shard.rows, dimension):
            reason = (
                f"array is {dtype} {shape} fortran={fortran}, "
                f"expected <f4 ({shard.rows}, {dimension}) C order"
            )
            raise SnapshotCorruptError(str(path), reason)
        offset = handle.tell()
        if shard.spec["bytes"] != offset + shard.rows * dimension * 4:
            raise SnapshotCorruptError(str(path), "file size does not match the array shape")
        handle.seek(0)
        digest = _digest(shard.algorithm)
        digest.update(handle.read(offset))
        rows = matrix[shard.start : shard.start + shard.rows]
        view = rows.reshape(-1).view(np.uint8).data
        for begin in range(0, len(view), READ_CHUNK):
            chunk = view[begin : begin + READ_CHUNK]
            remaining = chunk
            while remaining:
                got = handle.readinto(remaining)
                if not got:
                    raise SnapshotCorruptError(str(path), "file ended before the array did")
                remaining = remaining[got:]
            digest.update(chunk)
    if digest.hexdigest() != shard.spec[shard.algorithm]:
        raise SnapshotCorruptError(str(path), f"{shard.algorithm} does not match the manifest")


def _read_records(
    path: Path, spec: dict[str, Any], count: int, algorithm: str
) -> tuple[list[str], list[Metadata | None]]:
    raw = path.read_bytes()
    digest = _digest(algorithm)
    digest.update(raw)
    if digest.hexdigest() != spec[algorithm]:
        raise SnapshotCorruptError(str(path), f"{algorithm} does not match the manifest")
    try:
        records = json.loads(raw)
        ids, metadata = records["ids"], records["metadata"]
    except (ValueError, KeyError, TypeError) as exc:
        reason = f"records are not of the expected form: {exc}"
        raise SnapshotCorruptError(str(path), reason) from exc
    if not isinstance(ids, list) or not isinstance(metadata, list):
        raise SnapshotCorruptError(str(path), "ids and metadata must be lists")
    if len(ids) != count or len(metadata) != count:
        reason = f"{len(ids)} ids and {len(metadata)} metadata entries, manifest count {count}"
        raise SnapshotCorruptError(str(path), reason)
    try:
        check_ids(ids)
    except ValueError as exc:
        raise SnapshotCorruptError(str(path), str(exc)) from exc
    if len(set(ids)) != count:
        raise SnapshotCorruptError(str(path), "ids are not unique")
    if not all(entry is None or isinstance(entry, dict) for entry in metadata):
        raise SnapshotCorruptError(str(path), "metadata entries must be objects or null")
    return ids, metadata


def _read_manifest(folder: Path, pointer: dict[str, Any], dimension: int) -> dict[str, Any]:
    path = folder / MANIFEST
    try:
        raw = path.read_bytes()
    except FileNotFoundError as exc:
        raise SnapshotCorruptError(str(path), "manifest is missing") from exc
    if hashlib.sha256(raw).hexdigest() != pointer["manifest_sha256"]:
        raise SnapshotCorruptError(str(path), "manifest sha256 does not match the pointer")
    try:
        manifest = json.loads(raw)
    except ValueError as exc:
        raise SnapshotCorruptError(str(path), f"manifest is not valid JSON: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise SnapshotCorruptError(str(path), f"not a {FORMAT} manifest")
    if manifest.get("version") not in READABLE_VERSIONS:
        reason = f"format version {manifest.get('version')!r}, this code reads {READABLE_VERSIONS}"
        raise SnapshotCorruptError(str(path), reason)
    if manifest.get("dimension") != dimension:
        got = manifest.get("dimension")
        reason = f"dimension {got!r}, the index is configured with {dimension}"
        raise SnapshotCorruptError(str(path), reason)
    if not isinstance(manifest.get("namespaces"), dict):
        raise SnapshotCorruptError(str(path), "namespaces must be an object")
    return manifest


def _read_once(
    directory: Path, pointer: dict[str, Any], dimension: int
) -> dict[str, NamespaceStore]:
    folder = directory / pointer["snapshot"]
    manifest = _read_manifest(folder, pointer, dimension)
    algorithm = CHECKSUMS[manifest["version"]]
    plans: dict[str, tuple[int, list[_Shard], Path]] = {}
    for namespace, entry in manifest["namespaces"].items():
        try:
            check_namespace(namespace)
        except ValueError as exc:
            raise SnapshotCorruptError(str(folder / MANIFEST), str(exc)) from exc
        count = entry.get("count") if isinstance(entry, dict) else None
        if not isinstance(count, int) or count < 0:
            raise SnapshotCorruptError(str(folder / MANIFEST), f"bad count for {namespace!r}")
        shards = _shards(folder, namespace, entry, count, algorithm)
        records_path = _check_file(folder, entry.get("records"), f"{namespace}.json", algorithm)
        plans[namespace] = count, shards, records_path
    stores: dict[str, NamespaceStore] = {}
    with ThreadPoolExecutor(SHARDS_MAX, thread_name_prefix="vectors-load") as readers:
        matrices: dict[str, Matrix] = {}
        reads: list[Future[None]] = []
        for namespace, (count, shards, _) in plans.items():
            matrix = matrices[namespace] = np.empty((max(count, 16), dimension), np.float32)
            reads += [readers.submit(_read_shard, shard, matrix) for shard in shards]
        records = {
            namespace: _read_records(
                path, manifest["namespaces"][namespace]["records"], count, algorithm
            )
            for namespace, (count, _, path) in plans.items()
        }
        for read in reads:
            read.result()
    for namespace, (ids, metadata) in records.items():
        stores[namespace] = NamespaceStore.adopt(matrices[namespace], ids, metadata)
    return stores


def read_snapshot(directory: Path, dimension: int) -> tuple[str | None, dict[str, NamespaceStore]]:
    """Load and verify the current snapshot: ``(name or None when empty, stores)``.

    Empty: no directory, no ``CURRENT`` and no snapshot directory, or the "no snapshot
    yet" pointer. ``CURRENT`` missing beside snapshot directories is damage
    (``read_pointer``). If a save of this process switched ``CURRENT`` (and pruned the old
    snapshot) while it was being read, the read restarts from the new pointer; a damaged
    snapshot whose pointer did not move is reported, never skipped.
    """
    if not directory.exists():
        return None, {}
    pointer = read_pointer(directory)
    while pointer is not None and pointer["snapshot"] is not None:
        try:
            return pointer["snapshot"], _read_once(directory, pointer, dimension)
        except SnapshotCorruptError:
            latest = read_pointer(directory)
            if latest == pointer:
                raise
            pointer = latest
    return None, {}
