"""One writer process per index directory: an ``flock`` on ``<index>/writer.lock``.

``flock`` locks belong to an open file description, so a second ``open`` + ``flock`` in the
same process would conflict with the first. The lock is therefore shared per process: the
first :class:`WriterLock` on a directory takes it, later ones in the same process (for
example a second ``VectorIndex`` that loads what the first saved) count a reference, and
the lock is released when the last one is. Saves of one process to one directory are
serialised by ``save_mutex``. The kernel drops the lock when the process dies, so a crash
never leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import structlog

from app.errors import IndexLockedError

__all__ = ["LOCK_FILE", "WriterLock"]

log = structlog.get_logger(__name__)

LOCK_FILE: Final = "writer.lock"


@dataclass
class _Held:
    fd: int
    references: int = 1
    save_mutex: threading.Lock = field(default_factory=threading.Lock)


_registry: dict[str, _Held] = {}
_registry_mutex = threading.Lock()


class WriterLock:
    """The process-wide writer lock of one index directory (re-entrant across instances)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._key: str | None = None

    @property
    def held(self) -> bool:
        return self._key is not None

    def acquire(self) -> None:
        """Take (or share, within this process) the lock; ``IndexLockedError`` if another has it."""
        if self._key is not None:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        key = str(self.directory.resolve())
        with _registry_mutex:
            held = _registry.get(key)
            if held is not None:
                held.references += 1
                self._key = key
                return
            path = self.directory / LOCK_FILE
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as exc:
                owner = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "unknown"
                os.close(fd)
                msg = (
                    f"index directory {self.directory} is locked by another writer process "
                    f"(pid {owner}, lock file {path}); stop it or use another FAISS__INDEX_PATH"
                )
                raise IndexLockedError(msg) from exc
            except BaseException:
                os.close(fd)
                raise
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
            _registry[key] = _Held(fd)
            self._key = key
        log.debug("vectors.writer_lock_acquired", directory=key)

    def save_mutex(self) -> threading.Lock:
        """The mutex that serialises saves of this process to the directory."""
        if self._key is None:
            msg = "writer lock is not held; call acquire() first"
            raise RuntimeError(msg)
        return _registry[self._key].save_mutex

    def release(self) -> None:
        """Drop this instance's share; the file lock goes with the last share. Idempotent."""
        key, self._key = self._key, None
        if key is None:
            return
        with _registry_mutex:
            held = _registry[key]
            held.references -= 1
            if held.references > 0:
                return
            del _registry[key]
            try:
                fcntl.flock(held.fd, fcntl.LOCK_UN)
            finally:
                os.close(held.fd)
        log.debug("vectors.writer_lock_released", directory=key)
