"""A Postgres 16 with pgvector for the tests: a ``pgserver`` instance in its own directory.

Debian's Postgres here has no pgvector, so the tests of ``PgVectorStore`` start the server
``pgserver`` bundles (PostgreSQL 16 with pgvector 0.6.2) in a temporary data directory, once
per test session, and stop it after; :func:`pgvector_server` checks that its postmaster
is gone (and kills it if ``pg_ctl stop`` left it running), so no process survives the run.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

__all__ = ["pgvector_server"]

STOP_TIMEOUT_S = 10.0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _wait_gone(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@contextlib.contextmanager
def pgvector_server(directory: Path) -> Iterator[str]:
    """Start Postgres + pgvector with its data in ``directory``; yield the URI of ``postgres``."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
        from pgserver.postgres_server import get_server

    # pgserver runs Postgres as a 'pgserver' system user when started by root: the directory
    # must be reachable by it.
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o777)
    server = get_server(directory / "pgdata", cleanup_mode="stop")
    pid = server.get_pid()
    try:
        yield str(server.get_uri("postgres"))
    finally:
        server.cleanup()
        if pid is not None and not _wait_gone(pid, STOP_TIMEOUT_S):
            os.kill(pid, signal.SIGQUIT)  # immediate shutdown: its children end with it
            if not _wait_gone(pid, STOP_TIMEOUT_S):
                os.kill(pid, signal.SIGKILL)
        if pid is not None and _alive(pid):
            raise RuntimeError(f"the test pgvector server {pid} in {directory} did not stop")
