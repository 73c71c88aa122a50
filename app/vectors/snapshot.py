"""Snapshots of a vector index on disk: no pickle, verified on load, switched atomically.

Layout of an index directory::

    writer.lock                         see lockfile.py
    CURRENT                             {"snapshot": "<name>", "manifest_sha256": "..."}, or
                                        {"snapshot": null, "manifest_sha256": null}: no
                                        snapshot yet
    snapshot-000000000007-1a2b3c4d/
        manifest.json                   format version, dimension, per namespace: count and,
                                        per file, its size and checksum (and rows, per vector
                                        file)
        <namespace>.npy                 count x dimension little-endian float32, C order
          or <namespace>.<i>.npy        consecutive row ranges of it, i = 0, 1, ... (shards)
        <namespace>.json                {"ids": [...], "metadata": [...]} in row order

Each file's checksum is an xxh3-128 (``xxhash``), under the key ``xxh3_128``: it detects
corruption, which is all a snapshot needs (a writer able to change the files could change
the manifest too, so a cryptographic hash bought nothing), and it runs at memory speed
(about 20 GB/s on one core here, against 1-1.8 GB/s for sha256, which made the hash the
bound of save and load). Snapshots written before (format versions 1 and 2, a ``sha256``
per file) are still read and verified with sha256. The manifest itself is small; the
pointer keeps its sha256.

The vectors of a namespace of at least ``2 x SHARD_MIN_BYTES`` are split into up to
``SHARDS_MAX`` (one per core) files, written and checked on several threads at save and
at load. Format version 1 (one ``<namespace>.npy``, no ``rows``) is still read.

A save writes a complete new snapshot directory, fsyncs every file and the directory, then
writes ``CURRENT.tmp``, fsyncs it and ``os.replace``-s it over ``CURRENT`` (then fsyncs the
index directory). Until that rename the old ``CURRENT`` names the previous snapshot, so a
crash at any point leaves a loadable index. The first save to a directory without
``CURRENT`` first switches it the same way to the "no snapshot yet" pointer, before it
makes any snapshot directory: so ``CURRENT`` is only ever missing in a directory that has
never held a snapshot, and a missing ``CURRENT`` beside snapshot directories is damage,
reported by load and save alike (neither deletes anything then). A directory written by
an earlier version has ``CURRENT`` beside its snapshots and loads as before; only one
whose very first save crashed (a snapshot directory, no ``CURRENT``) is now reported.

The previous snapshot is kept; older ones and leftovers of crashed saves are removed after
the switch, under the process's save mutex (``lockfile.py``): ``CURRENT`` is read again
first, so that what it names, its predecessor and any later snapshot (another
``VectorIndex`` of this process on the same directory may have saved meanwhile) are kept.

A load (``snapshot_reader.py``) verifies headers, sizes, the checksum of every file, counts and
ids, and raises :class:`SnapshotCorruptError` with the path and reason on any mismatch. A
missing directory, a missing ``CURRENT`` without snapshot directories, and the "no
snapshot yet" pointer are an empty index.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import secrets
import shutil
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from io import BytesIO
from pathlib import Path
from typing import Any, Final

import numpy as np
import structlog
import xxhash

from app.errors import SnapshotCorruptError
from app.vectors.validation import Matrix, Metadata

__all__ = [
    "CHECKSUM",
    "FORMAT",
    "FORMAT_VERSION",
    "MANIFEST",
    "POINTER",
    "SHARDS_MAX",
    "SHARD_MIN_BYTES",
    "SNAPSHOT_NAME",
    "NamespaceData",
    "Written",
    "after_write_hook",
    "copy_matrix",
    "prune",
    "read_pointer",
    "shard_rows",
    "vector_file_name",
    "write_snapshot",
]

log = structlog.get_logger(__name__)


def _usable_cores() -> int:
    if hasattr(os, "sched_getaffinity"):  # the cores this process may run on (containers)
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


FORMAT: Final = "datalayer.vectors.snapshot"
FORMAT_VERSION: Final = 3
# The manifest key of each file's checksum in this version (versions 1 and 2: "sha256").
CHECKSUM: Final = "xxh3_128"
SHARD_MIN_BYTES: int = 16 << 20  # smaller vector files are not worth a thread
# One writer thread per shard, one shard per usable core, at most 8 files per namespace.
SHARDS_MAX: int = min(8, _usable_cores())

POINTER: Final = "CURRENT"
MAX_UNSYNCED_FILES: Final = 64
MANIFEST: Final = "manifest.json"
SNAPSHOT_NAME: Final = re.compile(r"snapshot-(\d{12})-[0-9a-f]{8}")
# The pointer of a directory whose first save has begun but not yet switched to a snapshot.
_NO_SNAPSHOT: Final = {"snapshot": None, "manifest_sha256": None}

# Testing seam: called with a step label after each file of a save is written (the crash
# test sets it in a child process to SIGKILL itself at a chosen step). ``None`` in production.
after_write_hook: Callable[[str], None] | None = None


@dataclass(frozen=True)
class NamespaceData:
    """What a snapshot stores of one namespace (the matrix holds exactly ``len(ids)`` rows)."""

    vectors: Matrix
    ids: list[str]
    metadata: list[Metadata | None]


def _step(label: str) -> None:
    if after_write_hook is not None:
        after_write_hook(label)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _npy_header(vectors: Matrix) -> bytes:
    buffer = BytesIO()
    np.lib.format.write_array_header_1_0(buffer, np.lib.format.header_data_from_array_1_0(vectors))
    return buffer.getvalue()


def shard_rows(count: int, dimension: int) -> list[tuple[int, int]]:
    """The ``(start, stop)`` row ranges of a namespace's vector files, in order."""
    shards = min(SHARDS_MAX, count * dimension * 4 // SHARD_MIN_BYTES, count)
    bounds = [count * shard // max(shards, 1) for shard in range(max(shards, 1) + 1)]
    return list(itertools.pairwise(bounds))


def copy_matrix(matrix: Matrix) -> Matrix:
    """A copy of ``matrix``, made on one thread per shard (a single memcpy of 123 MB took
    46-60 ms here, two threads 26-31 ms: the save holds every lock while it copies)."""
    ranges = shard_rows(matrix.shape[0], matrix.shape[1])
    copy = np.empty_like(matrix)
    if len(ranges) == 1:
        np.copyto(copy, matrix)
        return copy
    with ThreadPoolExecutor(len(ranges), thread_name_prefix="vectors-copy") as copiers:
        copies = [
            copiers.submit(np.copyto, copy[start:stop], matrix[start:stop])
            for start, stop in ranges
        ]
        for done in copies:
            done.result()
    return copy


def vector_file_name(namespace: str, shard: int, shards: int) -> str:
    return f"{namespace}.npy" if shards == 1 else f"{namespace}.{shard}.npy"


def _write(path: Path, parts: list[bytes | memoryview], fds: list[int]) -> tuple[int, int]:
    """Write ``parts`` to a new file, kept open in ``fds`` for the fsync: ``(fd, size)``."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    fds.append(fd)
    size = 0
    for part in parts:
        view = memoryview(part).cast("B")
        while view:
            written = os.write(fd, view)
            view = view[written:]
            size += written
    _step(f"wrote:{path.name}")
    return fd, size


def _checksum(parts: list[bytes | memoryview]) -> str:
    digest = xxhash.xxh3_128()
    for part in parts:
        digest.update(part)
    return digest.hexdigest()


def _snapshot_names(directory: Path) -> list[tuple[int, str]]:
    found = []
    for entry in directory.iterdir():
        match = SNAPSHOT_NAME.fullmatch(entry.name)
        if match is not None and entry.is_dir():
            found.append((int(match.group(1)), entry.name))
    return sorted(found)


def _read_pointer_bytes(directory: Path) -> bytes | None:
    """``CURRENT``'s bytes; ``None`` if it is missing and no snapshot directory exists."""
    path = directory / POINTER
    try:
        return path.read_bytes()
    except FileNotFoundError:
        snapshots = _snapshot_names(directory)
        if not snapshots:
            return None
    try:  # a first save of this process may have written it since, before its snapshot
        return path.read_bytes()
    except FileNotFoundError as exc:
        reason = (
            f"{POINTER} is missing while {len(snapshots)} snapshot directories exist (newest "
            f"{snapshots[-1][1]}); restore {POINTER}, or move the snapshot directories away "
            "to start empty"
        )
        raise SnapshotCorruptError(str(directory), reason) from exc


def read_pointer(directory: Path) -> dict[str, Any] | None:
    """The parsed ``CURRENT``: ``{"snapshot": name or None, "manifest_sha256": ...}``.

    ``None`` when there is no ``CURRENT`` and no snapshot directory (a new directory);
    ``SnapshotCorruptError`` when ``CURRENT`` is missing beside snapshots or malformed.
    """
    raw = _read_pointer_bytes(directory)
    if raw is None:
        return None
    path = directory / POINTER
    try:
        pointer = json.loads(raw)
    except ValueError as exc:
        raise SnapshotCorruptError(str(path), f"pointer is not valid JSON: {exc}") from exc
    if not isinstance(pointer, dict) or (
        pointer != _NO_SNAPSHOT
        and (
            not isinstance(pointer.get("snapshot"), str)
            or SNAPSHOT_NAME.fullmatch(pointer["snapshot"]) is None
            or not isinstance(pointer.get("manifest_sha256"), str)
        )
    ):
        raise SnapshotCorruptError(str(path), f"pointer has an unexpected form: {raw[:200]!r}")
    return pointer


def _switch_pointer(directory: Path, name: str | None, manifest: bytes | None) -> None:
    """Point ``CURRENT`` at snapshot ``name`` (``None``: no snapshot yet), atomically."""
    digest = None if manifest is None else hashlib.sha256(manifest).hexdigest()
    pointer = json.dumps({"snapshot": name, "manifest_sha256": digest}).encode("utf-8")
    temporary = directory / f"{POINTER}.tmp"
    temporary.unlink(missing_ok=True)
    fds: list[int] = []
    try:
        fd, _ = _write(temporary, [pointer], fds)
        os.fsync(fd)
    finally:
        for fd in fds:
            os.close(fd)
    os.replace(temporary, directory / POINTER)
    _fsync_dir(directory)
    _step("switched")


@dataclass(frozen=True)
class Written:
    """A snapshot just written: its folder, and the one ``CURRENT`` named before (kept;
    ``None`` when there was none)."""

    path: Path
    previous: str | None


@dataclass(frozen=True)
class _File:
    """One file of a snapshot to write: where, what, and which manifest entry it fills."""

    path: Path
    parts: list[bytes | memoryview]
    namespace: str
    rows: int | None = None  # vector files: how many rows of the namespace they hold


def _files(target: Path, data: dict[str, NamespaceData]) -> list[_File]:
    files = []
    for namespace, item in sorted(data.items()):
        vectors = np.ascontiguousarray(item.vectors, dtype="<f4")
        ranges = shard_rows(len(item.ids), vectors.shape[1])
        for shard, (start, stop) in enumerate(ranges):
            rows = vectors[start:stop]
            path = target / vector_file_name(namespace, shard, len(ranges))
            files.append(_File(path, [_npy_header(rows), rows.data], namespace, stop - start))
        records = json.dumps(
            {"ids": item.ids, "metadata": item.metadata},
            ensure_ascii=False,
            allow_nan=False,
            separators=(",", ":"),
        ).encode("utf-8")
        files.append(_File(target / f"{namespace}.json", [records], namespace))
    return files


def _write_files(
    files: list[_File], fds: list[int], on_data_written: Callable[[], None] | None = None
) -> list[dict[str, Any]]:
    """Write, checksum and fsync ``files``, several at a time; their manifest entries, in order.

    Each worker writes a file, hands its fsync to the syncer thread, then checksums the
    bytes it wrote (from memory) while the disk catches up. The syncer closes each file after its
    fsync, and at most ``MAX_UNSYNCED_FILES`` wait for it: a save of thousands of
    namespaces (two files each) stays far below the process's open-file limit.
    """

    unsynced = threading.BoundedSemaphore(MAX_UNSYNCED_FILES)

    def sync_and_close(fd: int) -> None:
        try:
            os.fsync(fd)
        finally:
            fds.remove(fd)
            os.close(fd)
            unsynced.release()

    def write(file: _File, syncer: ThreadPoolExecutor) -> tuple[dict[str, Any], Future[None]]:
        unsynced.acquire()
        try:
            fd, size = _write(file.path, file.parts, fds)
        except BaseException:
            unsynced.release()
            raise
        synced = syncer.submit(sync_and_close, fd)
        entry: dict[str, Any] = {"file": file.path.name, "bytes": size}
        entry[CHECKSUM] = _checksum(file.parts)
        if file.rows is not None:
            entry["rows"] = file.rows
        return entry, synced

    with (
        ThreadPoolExecutor(SHARDS_MAX, thread_name_prefix="vectors-snapshot") as workers,
        ThreadPoolExecutor(1, thread_name_prefix="vectors-fsync") as syncer,
    ):
        written = [workers.submit(write, file, syncer) for file in files]
        results = [future.result() for future in written]  # written and checksummed
        if on_data_written is not None:
            on_data_written()  # the data's memory is not read again: its owner may change it
        entries = []
        for entry, synced in results:
            synced.result()
            entries.append(entry)
    return entries


def write_snapshot(
    directory: Path,
    dimension: int,
    data: dict[str, NamespaceData],
    *,
    on_data_written: Callable[[], None] | None = None,
) -> Written:
    """Write ``data`` as a new snapshot and switch ``CURRENT`` to it (``prune`` comes after).

    ``on_data_written`` is called once every file's bytes are written and checksummed,
    before the fsyncs: ``data``'s arrays are not read after that, so a caller that passed
    live arrays (not copies) may let writers change them from then on.
    """
    directory.mkdir(parents=True, exist_ok=True)
    previous = read_pointer(directory)  # raises when CURRENT is missing beside snapshots
    if previous is None:  # a new directory: record "no snapshot yet" before making one
        _switch_pointer(directory, None, None)
    existing = _snapshot_names(directory)
    sequence = (existing[-1][0] + 1) if existing else 1
    target = directory / f"snapshot-{sequence:012d}-{secrets.token_hex(4)}"
    target.mkdir()
    files = _files(target, data)
    namespaces: dict[str, dict[str, Any]] = {
        namespace: {"count": len(item.ids), "vectors": []} for namespace, item in data.items()
    }
    fds: list[int] = []
    try:
        for file, entry in zip(files, _write_files(files, fds, on_data_written), strict=True):
            if file.rows is None:
                namespaces[file.namespace]["records"] = entry
            else:
                namespaces[file.namespace]["vectors"].append(entry)
        _step("synced")
        manifest = json.dumps(
            {
                "format": FORMAT,
                "version": FORMAT_VERSION,
                "metric": "cosine",
                "dimension": dimension,
                "created_at": datetime.now(UTC).isoformat(),
                "namespaces": namespaces,
            },
            indent=1,
        ).encode("utf-8")
        fd, _ = _write(target / MANIFEST, [manifest], fds)
        os.fsync(fd)
        _fsync_dir(target)
        _step("manifest")
    finally:
        for fd in fds:
            os.close(fd)
    _switch_pointer(directory, target.name, manifest)
    log.info(
        "vectors.snapshot_written",
        path=str(target),
        namespaces=len(data),
        vectors=sum(len(item.ids) for item in data.values()),
        files=len(files),
    )
    return Written(target, None if previous is None else previous["snapshot"])


def prune(directory: Path, written: Written) -> None:
    """Remove snapshots older than ``written`` (leftovers of crashes too), but never the one
    ``CURRENT`` names now nor its predecessor; call it under the save mutex.

    ``CURRENT`` is read again: another ``VectorIndex`` of this process may have saved since
    ``written``, so ``CURRENT`` may name a later snapshot, whose predecessor is then
    ``written`` or later still. ``written`` and every later snapshot are kept.
    """
    current = read_pointer(directory)
    if current is None:  # cannot happen after a save's switch; delete nothing if it does
        return
    keep = {current["snapshot"]}
    if current["snapshot"] == written.path.name:
        keep.add(written.previous)
    match = SNAPSHOT_NAME.fullmatch(written.path.name)
    assert match is not None  # write_snapshot made the name
    for sequence, name in _snapshot_names(directory):
        if sequence < int(match.group(1)) and name not in keep:
            shutil.rmtree(directory / name)
