"""Snapshots of a vector index on disk: no pickle, verified on load, switched atomically.

Layout of an index directory::

    writer.lock                         see lockfile.py
    CURRENT                             {"snapshot": "<name>", "manifest_sha256": "..."}
    snapshot-000000000007-1a2b3c4d/
        manifest.json                   format version, dimension, per namespace: count and,
                                        per file, its size and sha256
        <namespace>.npy                 count x dimension little-endian float32, C order
        <namespace>.json                {"ids": [...], "metadata": [...]} in row order

A save writes a complete new snapshot directory, fsyncs every file and the directory, then
writes ``CURRENT.tmp``, fsyncs it and ``os.replace``-s it over ``CURRENT`` (then fsyncs the
index directory). Until that rename the old ``CURRENT`` names the previous snapshot, so a
crash at any point leaves a loadable index. The previous snapshot is kept; older ones and
leftovers of crashed saves are removed after the switch.

A load (``snapshot_reader.py``) verifies headers, sizes, sha256 of every file, counts and
ids, and raises :class:`SnapshotCorruptError` with the path and reason on any mismatch. A
missing directory or missing ``CURRENT`` is an empty index.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from io import BytesIO
from pathlib import Path
from typing import Any, Final

import numpy as np
import structlog

from app.errors import SnapshotCorruptError
from app.vectors.validation import Matrix, Metadata

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "MANIFEST",
    "POINTER",
    "SNAPSHOT_NAME",
    "NamespaceData",
    "Written",
    "after_write_hook",
    "prune",
    "read_pointer",
    "write_snapshot",
]

log = structlog.get_logger(__name__)

FORMAT: Final = "datalayer.vectors.snapshot"
FORMAT_VERSION: Final = 1
POINTER: Final = "CURRENT"
MANIFEST: Final = "manifest.json"
SNAPSHOT_NAME: Final = re.compile(r"snapshot-(\d{12})-[0-9a-f]{8}")

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


def _write(path: Path, parts: list[bytes | memoryview], fds: list[int]) -> dict[str, Any]:
    """Write ``parts`` to a new file, kept open in ``fds`` for the fsync; return name and size."""
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
    return {"file": path.name, "bytes": size}


def _sha256(parts: list[bytes | memoryview]) -> str:
    digest = hashlib.sha256()
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


def read_pointer(directory: Path) -> dict[str, Any] | None:
    path = directory / POINTER
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        pointer = json.loads(raw)
    except ValueError as exc:
        raise SnapshotCorruptError(str(path), f"pointer is not valid JSON: {exc}") from exc
    if (
        not isinstance(pointer, dict)
        or not isinstance(pointer.get("snapshot"), str)
        or SNAPSHOT_NAME.fullmatch(pointer["snapshot"]) is None
        or not isinstance(pointer.get("manifest_sha256"), str)
    ):
        raise SnapshotCorruptError(str(path), f"pointer has an unexpected form: {raw[:200]!r}")
    return pointer


def _switch_pointer(directory: Path, name: str, manifest: bytes) -> None:
    pointer = json.dumps(
        {"snapshot": name, "manifest_sha256": hashlib.sha256(manifest).hexdigest()}
    ).encode("utf-8")
    temporary = directory / f"{POINTER}.tmp"
    temporary.unlink(missing_ok=True)
    fds: list[int] = []
    try:
        _write(temporary, [pointer], fds)
        os.fsync(fds[0])
    finally:
        for fd in fds:
            os.close(fd)
    os.replace(temporary, directory / POINTER)
    _fsync_dir(directory)
    _step("switched")


@dataclass(frozen=True)
class Written:
    """A snapshot just written: its folder, and the one ``CURRENT`` named before (kept)."""

    path: Path
    previous: str | None


def write_snapshot(directory: Path, dimension: int, data: dict[str, NamespaceData]) -> Written:
    """Write ``data`` as a new snapshot and switch ``CURRENT`` to it (``prune`` comes after).

    The sha256 of every file is computed on a helper thread while this thread writes and
    fsyncs the same bytes.
    """
    directory.mkdir(parents=True, exist_ok=True)
    existing = _snapshot_names(directory)
    previous = read_pointer(directory)
    sequence = (existing[-1][0] + 1) if existing else 1
    target = directory / f"snapshot-{sequence:012d}-{secrets.token_hex(4)}"
    target.mkdir()
    fds: list[int] = []
    files: list[tuple[Path, list[bytes | memoryview]]] = []
    for namespace, item in sorted(data.items()):
        vectors = np.ascontiguousarray(item.vectors, dtype="<f4")
        records = json.dumps(
            {"ids": item.ids, "metadata": item.metadata},
            ensure_ascii=False,
            allow_nan=False,
            separators=(",", ":"),
        ).encode("utf-8")
        files.append((target / f"{namespace}.npy", [_npy_header(vectors), vectors.data]))
        files.append((target / f"{namespace}.json", [records]))
    entries: dict[str, dict[str, Any]] = {
        namespace: {"count": len(item.ids)} for namespace, item in data.items()
    }
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="vectors-hash") as hasher:
        digests = [hasher.submit(_sha256, parts) for _, parts in files]
        try:
            for (path, parts), digest in zip(files, digests, strict=True):
                entry = _write(path, parts, fds)
                namespace, kind = path.stem, "vectors" if path.suffix == ".npy" else "records"
                entries[namespace][kind] = entry
                entry["sha256"] = digest
            for fd in fds:
                os.fsync(fd)
            _step("synced")
            for namespace_entry in entries.values():
                for kind in ("vectors", "records"):
                    namespace_entry[kind]["sha256"] = namespace_entry[kind]["sha256"].result()
            manifest = json.dumps(
                {
                    "format": FORMAT,
                    "version": FORMAT_VERSION,
                    "metric": "cosine",
                    "dimension": dimension,
                    "created_at": datetime.now(UTC).isoformat(),
                    "namespaces": entries,
                },
                indent=1,
            ).encode("utf-8")
            _write(target / MANIFEST, [manifest], fds)
            os.fsync(fds[-1])
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
    )
    return Written(target, None if previous is None else previous["snapshot"])


def prune(directory: Path, written: Written) -> None:
    """Remove every snapshot but ``written`` and its predecessor (leftovers of crashes too)."""
    keep = {written.path.name} | ({written.previous} if written.previous else set())
    for _, name in _snapshot_names(directory):
        if name not in keep:
            shutil.rmtree(directory / name)
