"""The file work of :class:`~app.data.units.file.DataUnitFile`, synchronous (run in a thread).

Layout beside ``<path>``: ``<path>.bak`` (the previous good version), ``<path>.lock`` (the
``flock`` every reader and writer takes: shared to read, exclusive to write, so processes on
one host see whole versions) and ``<path>.tmp`` (a version being written).

A write: serialise first (a bad value changes nothing), take the lock, copy the current file
to the backup if it is valid JSON (never replace a good backup with a damaged file), write the
temporary file, ``fsync`` it, ``os.replace`` it over the current one and ``fsync`` the
directory, so that after a crash the name points at either the old or the new version.
A read falls back to the backup when the current file is missing or damaged.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from app.data.errors import DataUnitCorruptError, DataUnitLockedError, DataUnitTypeError

__all__ = ["JsonFileStore", "ReadResult"]

LOCK_POLL_S: Final = 0.01
_MISSING: Final = object()


@dataclass(frozen=True, slots=True)
class ReadResult:
    """What a read found: the value (``found`` False when neither file exists) and whether
    it came from the backup."""

    value: Any
    found: bool
    from_backup: bool
    problem: str | None = None


def encode(value: Any) -> bytes:
    """``value`` as JSON text; non-JSON values (and NaN/inf) are a DataUnitTypeError."""
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=False).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise DataUnitTypeError(
            f"a file data unit stores JSON values (dict, list, str, int, float, bool, None); "
            f"got {type(value).__name__}: {exc}"
        ) from exc


class JsonFileStore:
    """One JSON value in a file, replaced atomically and guarded by a cross-process lock."""

    def __init__(self, path: Path, *, encoding: str, lock_timeout_s: float) -> None:
        self.path = path
        self.backup = path.with_name(path.name + ".bak")
        self.lock_path = path.with_name(path.name + ".lock")
        self.tmp = path.with_name(path.name + ".tmp")
        self.encoding = encoding
        self.lock_timeout_s = lock_timeout_s

    @contextlib.contextmanager
    def locked(self, *, exclusive: bool) -> Iterator[None]:
        """Hold the ``flock`` (polling up to ``lock_timeout_s``, then DataUnitLockedError)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            mode = (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB
            deadline = time.monotonic() + self.lock_timeout_s
            while True:
                try:
                    fcntl.flock(fd, mode)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise DataUnitLockedError(
                            f"{self.lock_path} was held by another writer for more than "
                            f"{self.lock_timeout_s} s; is another process stuck writing?"
                        ) from None
                    time.sleep(LOCK_POLL_S)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the flock

    def _decode(self, raw: bytes) -> Any:
        return json.loads(raw.decode(self.encoding))

    def _load(self, path: Path) -> tuple[Any, str | None]:
        """(value, None), (_MISSING, None) when absent, or (_MISSING, problem) when damaged."""
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return _MISSING, None
        try:
            return self._decode(raw), None
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            return _MISSING, f"{path.name}: {exc}"

    def read(self) -> ReadResult:
        """The current value, or the backup's when the current file is missing or damaged."""
        with self.locked(exclusive=False):
            return self._read_unlocked()

    def _read_unlocked(self) -> ReadResult:
        value, problem = self._load(self.path)
        if value is not _MISSING:
            return ReadResult(value, found=True, from_backup=False)
        backup, backup_problem = self._load(self.backup)
        if backup is not _MISSING:
            return ReadResult(backup, found=True, from_backup=True, problem=problem)
        if problem is None and backup_problem is None:
            return ReadResult(None, found=False, from_backup=False)
        reasons = "; ".join(p for p in (problem, backup_problem) if p) or "missing"
        raise DataUnitCorruptError(str(self.path), reasons)

    def write(self, payload: bytes) -> None:
        """Replace the value with ``payload`` (already-encoded JSON), keeping a backup."""
        with self.locked(exclusive=True):
            self._backup_current()
            self._replace(self.path, payload)

    def _backup_current(self) -> None:
        current, _problem = self._load(self.path)
        if current is _MISSING:
            return  # nothing good to keep; the existing backup stays the last good version
        self._replace(self.backup, self.path.read_bytes())

    def _replace(self, target: Path, payload: bytes) -> None:
        tmp = target.with_name(target.name + ".tmp")
        with open(tmp, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
        dir_fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def remove(self) -> None:
        """Delete the value and its backup (``clear``)."""
        with self.locked(exclusive=True):
            for path in (self.path, self.backup):
                path.unlink(missing_ok=True)

    def restore_from_backup(self) -> None:
        """Put the backup back as the current file if the current one is still damaged."""
        with self.locked(exclusive=True):
            current, _problem = self._load(self.path)
            backup, _backup_problem = self._load(self.backup)
            if current is _MISSING and backup is not _MISSING:
                self._replace(self.path, self.backup.read_bytes())
