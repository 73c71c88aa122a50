"""An embedded, real Postgres (``pgserver``) under ``DATA_DIR/postgres`` for single-node runs.

``pgserver`` hands out one server object per data directory and process, so two handles in one
process share a server; a reference count here stops it only when the last user leaves.

Across processes, pgserver lists the PIDs holding a server in ``.handle_pids.json`` and stops
it when the last one leaves. A process killed with SIGKILL never leaves: its PID stayed listed,
so the next start joined the running server and no clean exit ever stopped it again. Before
joining, ``_recover_after_crash`` drops holders that are gone; with none left, a running
postmaster is an orphan and is stopped, and the start begins a fresh server.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import threading
import time
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import psutil
import structlog

from app.errors import EmbeddedPostgresError

__all__ = ["embedded_postgres"]

log = structlog.get_logger(__name__)

START_ATTEMPTS = 2
ORPHAN_STOP_TIMEOUT_S = 10.0
RETRY_PAUSE_S = 0.5
HOLDERS_FILE = ".handle_pids.json"  # pgserver's list of the PIDs holding the server
# psutil derives a process's start time from the boot time in whole seconds: allow that much.
START_TIME_SLACK_S = 1.0


_users: dict[Path, int] = {}
_users_lock = threading.Lock()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _postmaster_pid(pgdata: Path) -> int | None:
    """The first line of ``postmaster.pid``: the postmaster's PID (None without the file)."""
    try:
        return int((pgdata / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None


def _clear_single_user_lock(lock: Path, pid: int) -> None:
    """A single-user backend's (initdb's) ``postmaster.pid`` names it as ``-pid``. pgserver
    cannot parse that file, and fails on it at every start while it is there: wait for that
    backend to end, then remove the file if the backend left it behind."""
    deadline = time.monotonic() + ORPHAN_STOP_TIMEOUT_S
    while _alive(-pid):
        if time.monotonic() > deadline:
            raise EmbeddedPostgresError(f"initdb's postgres process {-pid} did not end")
        time.sleep(0.05)
    with contextlib.suppress(OSError, ValueError):
        if int(lock.read_text().split("\n", 1)[0]) == pid:
            lock.unlink()
            log.warning("postgres.embedded_stale_lock_removed", lock=str(lock), pid=pid)


def _stop_orphan(pgdata: Path) -> None:
    """Stop a postmaster that a failed start or a crash left running (its PID is in
    postmaster.pid)."""
    lock = pgdata / "postmaster.pid"
    pid = _postmaster_pid(pgdata)
    if pid is None:
        return
    if pid < 0:  # never os.kill a negative number: it signals a whole process group
        _clear_single_user_lock(lock, pid)
        return
    if pid == 0:
        return
    for sig in (signal.SIGINT, signal.SIGQUIT):  # fast shutdown, then immediate
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + ORPHAN_STOP_TIMEOUT_S
        while time.monotonic() < deadline:
            if not _alive(pid):
                return
            time.sleep(0.05)
    raise EmbeddedPostgresError(f"could not stop the postgres process {pid} of {pgdata}")


def _holder_alive(pid: int, listed_at: float) -> bool:
    """Whether ``pid`` still is the process that put itself in the holder list.

    A zombie has ended; a process started after the list was last written has only reused
    the number of a holder that is gone.
    """
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        return process.create_time() <= listed_at + START_TIME_SLACK_S
    except psutil.NoSuchProcess:
        return False


def _serves(pid: int, pgdata: Path) -> bool:
    """Whether ``pid`` is a postgres process of ``pgdata`` (not a stranger that reused it)."""
    try:
        return str(pgdata) in psutil.Process(pid).cmdline()
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:  # cannot tell: treat it as the postmaster, never unlink its file
        return True


def _recover_after_crash(pgdata: Path) -> None:
    """Forget holders that are gone; if none is left, stop the postmaster they left behind.

    Called under pgserver's inter-process lock, before this process joins the server.
    """
    listed = pgdata / HOLDERS_FILE
    try:
        holders = [int(pid) for pid in json.loads(listed.read_text())]
        listed_at = listed.stat().st_mtime
    except FileNotFoundError:
        holders, listed_at = [], 0.0
    except (OSError, ValueError, TypeError) as exc:
        raise EmbeddedPostgresError(
            f"{listed} is not pgserver's list of PIDs ({type(exc).__name__}: {exc}); "
            "stop every process using this data directory and remove the file"
        ) from exc
    alive = [pid for pid in holders if _holder_alive(pid, listed_at)]
    if alive != holders:
        log.warning(
            "postgres.embedded_dead_holders_forgotten",
            pgdata=str(pgdata),
            dead=sorted(set(holders) - set(alive)),
        )
        listed.write_text(json.dumps(alive))
    if alive:
        return  # a live process shares this server: join it
    postmaster = _postmaster_pid(pgdata)
    if postmaster is None or postmaster == 0:
        return
    if postmaster > 0 and not _serves(postmaster, pgdata):
        # postgres itself refuses to start while the file names a live process
        (pgdata / "postmaster.pid").unlink(missing_ok=True)
        log.warning("postgres.embedded_stale_lock_removed", pgdata=str(pgdata), pid=postmaster)
        return
    log.warning("postgres.embedded_orphan_stopping", pgdata=str(pgdata), pid=postmaster)
    _stop_orphan(pgdata)


def _remove_half_made_cluster(pgdata: Path) -> None:
    """A failed initdb of a new data directory leaves a cluster without its ``postgres`` role
    or database, which every later start would then run on ("role postgres does not exist").
    It holds nothing but what that initdb wrote, so the next attempt starts from scratch."""
    if pgdata.exists():
        shutil.rmtree(pgdata)
        log.warning("postgres.embedded_half_made_removed", pgdata=str(pgdata))


def _get_server(pgdata: Path) -> Any:
    with warnings.catch_warnings():
        # platformdirs warns at pgserver's import when XDG_RUNTIME_DIR is unset; harmless here.
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
        from pgserver.postgres_server import PostgresServer, get_server

    if pgdata not in PostgresServer._instances:  # this process does not hold it yet
        with PostgresServer._lock:
            _recover_after_crash(pgdata)

    for attempt in range(1, START_ATTEMPTS + 1):
        fresh = not (pgdata / "PG_VERSION").exists()
        try:
            return get_server(pgdata, cleanup_mode="stop")
        # AssertionError: pgserver asserts on the shape of postmaster.pid, and once read it
        # while initdb's single-user backend had its own (shorter, negative PID) file there.
        except (subprocess.SubprocessError, OSError, AssertionError) as exc:
            # pgserver keeps the half-made handle and may leave the server running.
            PostgresServer._instances.pop(pgdata, None)
            _stop_orphan(pgdata)
            if fresh:
                _remove_half_made_cluster(pgdata)
            if attempt == START_ATTEMPTS:
                raise EmbeddedPostgresError(
                    f"embedded Postgres in {pgdata} did not start: {type(exc).__name__}: {exc}"
                ) from exc
            log.warning("postgres.embedded_start_retry", pgdata=str(pgdata), error=str(exc))
            time.sleep(RETRY_PAUSE_S)
    raise AssertionError("unreachable")


def _start(pgdata: Path) -> tuple[Path, Any]:
    pgdata = pgdata.expanduser().resolve()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    with _users_lock:
        server = _get_server(pgdata)
        _users[pgdata] = _users.get(pgdata, 0) + 1
    return pgdata, server


def _stop(pgdata: Path, server: Any) -> None:
    with _users_lock:
        _users[pgdata] -= 1
        if _users[pgdata] > 0:
            return
        del _users[pgdata]
        server.cleanup()


async def _ensure_database(admin_uri: str, database: str) -> None:
    connection = await asyncpg.connect(admin_uri)
    try:
        exists = await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database)
        if not exists:
            quoted = '"' + database.replace('"', '""') + '"'
            await connection.execute(f"CREATE DATABASE {quoted}")
    finally:
        await connection.close()


@asynccontextmanager
async def embedded_postgres(pgdata: Path, database: str) -> AsyncIterator[str]:
    """Start (or join) the embedded server, make sure ``database`` exists, yield its URI.

    The server is stopped on exit, also when the start is cancelled half-way.
    """
    starting = asyncio.get_running_loop().run_in_executor(None, _start, pgdata)
    try:
        pgdata, server = await asyncio.shield(starting)
    except asyncio.CancelledError:
        pgdata, server = await starting
        await asyncio.to_thread(_stop, pgdata, server)
        raise
    log.info("postgres.embedded_started", pgdata=str(pgdata), pid=server.get_pid())
    try:
        await _ensure_database(server.get_uri("postgres"), database)
        yield str(server.get_uri(database))
    finally:
        await asyncio.shield(asyncio.to_thread(_stop, pgdata, server))
        log.info("postgres.embedded_stopped", pgdata=str(pgdata))
