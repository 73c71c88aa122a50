"""``python -m app serve`` after a crash (SIGKILL): the embedded Postgres it left is not kept."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.backends.embedded_postgres import HOLDERS_FILE, _recover_after_crash
from app.errors import EmbeddedPostgresError
from tests.integration.test_cli import app_env, free_port, postgres_processes_for

pytestmark = pytest.mark.integration

START_WITHIN_S = 90.0
STOP_WITHIN_S = 60.0


def postmaster_pid(pgdata: Path) -> int | None:
    """The PID in ``postmaster.pid`` (None without the file)."""
    try:
        return int((pgdata / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def start_serve(tmp_path: Path) -> tuple[subprocess.Popen[str], int]:
    """A ``serve`` subprocess on its own port, answering /health/live, or the test fails."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "app", "serve", "--port", str(port)],
        cwd=tmp_path,
        env=app_env(tmp_path, API__AUTH="disabled"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + START_WITHIN_S
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health/live", timeout=1).status_code == 200:
                return process, port
        except httpx.TransportError:
            pass
        if process.poll() is not None:
            pytest.fail(f"serve exited {process.returncode}: {process.communicate()[1]}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"serve did not answer within {START_WITHIN_S} s")
        time.sleep(0.2)


@pytest.fixture
def started(tmp_path: Path) -> Iterator[list[subprocess.Popen[str]]]:
    """The serve processes a test starts; afterwards, whatever they left running is stopped
    (each of them, and a postmaster serving this test's own data directory)."""
    processes: list[subprocess.Popen[str]] = []
    yield processes
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=STOP_WITHIN_S)  # reaps it and closes its pipe
    pgdata = tmp_path / "data" / "postgres"
    pid = postmaster_pid(pgdata)
    if pid is not None and pid > 0 and postgres_processes_for(pgdata):
        os.kill(pid, signal.SIGQUIT)


def test_a_clean_stop_after_a_crash_leaves_no_postgres(
    tmp_path: Path, started: list[subprocess.Popen[str]]
) -> None:
    """After serve is SIGKILLed its embedded Postgres outlives it; the next serve starts, serves
    and on SIGTERM exits 0 leaving no Postgres process for the data directory."""
    pgdata = tmp_path / "data" / "postgres"
    crashed, _ = start_serve(tmp_path)
    started.append(crashed)
    orphan = postmaster_pid(pgdata)
    assert orphan is not None
    crashed.send_signal(signal.SIGKILL)
    crashed.wait(STOP_WITHIN_S)
    assert alive(orphan), "the crash did not leave the embedded Postgres running"

    second, port = start_serve(tmp_path)
    started.append(second)
    ready = httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=10)
    assert ready.json()["backends"]["postgres"]["status"] == "ok", ready.text
    second.send_signal(signal.SIGTERM)
    _, stderr = second.communicate(timeout=STOP_WITHIN_S)
    assert second.returncode == 0, stderr
    assert postgres_processes_for(pgdata) == []
    assert not alive(orphan)
    assert not (pgdata / "postmaster.pid").exists()


def test_two_crashes_in_a_row_still_end_clean(
    tmp_path: Path, started: list[subprocess.Popen[str]]
) -> None:
    """Two SIGKILLed serves in a row (each after the other's start): a third, stopped cleanly,
    still leaves no Postgres process behind."""
    pgdata = tmp_path / "data" / "postgres"
    for _ in range(2):
        crashed, _ = start_serve(tmp_path)
        started.append(crashed)
        crashed.send_signal(signal.SIGKILL)
        crashed.wait(STOP_WITHIN_S)
    assert postgres_processes_for(pgdata), "the crashes did not leave the Postgres running"
    last, _ = start_serve(tmp_path)
    started.append(last)
    last.send_signal(signal.SIGTERM)
    _, stderr = last.communicate(timeout=STOP_WITHIN_S)
    assert last.returncode == 0, stderr
    assert postgres_processes_for(pgdata) == []


# --- Which holders the recovery keeps (no Postgres started) ------------------------------------


@pytest.fixture
def sleeper() -> Iterator[int]:
    """The PID of a process this test started (stopped after)."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield process.pid
    process.kill()
    process.wait(10)


def holders_after_recovery(pgdata: Path, holders: list[int], listed_at: float) -> list[int]:
    """The holder list after recovery, given the list and when it was last written."""
    listed = pgdata / HOLDERS_FILE
    listed.write_text(json.dumps(holders))
    os.utime(listed, (listed_at, listed_at))
    _recover_after_crash(pgdata)
    return list(json.loads(listed.read_text()))


def test_a_live_holder_is_kept_and_an_ended_one_forgotten(tmp_path: Path, sleeper: int) -> None:
    """A holder running since before the list was written stays; one that has ended goes."""
    ended = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    assert holders_after_recovery(tmp_path, [sleeper, int(ended.stdout)], time.time()) == [sleeper]


def test_a_pid_reused_after_the_list_was_written_is_not_a_holder(
    tmp_path: Path, sleeper: int
) -> None:
    """A running process that started after the list was last written only reuses a gone
    holder's number: it is forgotten."""
    assert holders_after_recovery(tmp_path, [sleeper], time.time() - 60) == []


def test_a_corrupt_holder_list_is_an_error_naming_the_file(tmp_path: Path) -> None:
    """A holder list that is not a JSON list of PIDs stops the start, naming the file."""
    (tmp_path / HOLDERS_FILE).write_text("{not json")
    with pytest.raises(EmbeddedPostgresError, match=HOLDERS_FILE):
        _recover_after_crash(tmp_path)
