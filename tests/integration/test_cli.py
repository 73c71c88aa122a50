"""``python -m app check|serve`` as a user runs them: exit codes, messages, nothing left behind."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def app_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """A clean environment: only PATH-like basics, the data dir, and what the test sets."""
    keep = {k: v for k, v in os.environ.items() if k in {"PATH", "HOME", "LANG", "TMPDIR"}}
    return {
        **keep,
        "DATA_DIR": str(tmp_path / "data"),
        "FAISS__INDEX_PATH": str(tmp_path / "faiss"),
        "FAISS__DIMENSION": "8",
        "LOG__LEVEL": "WARNING",
        **extra,
    }


def run_app(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        cwd=tmp_path,
        env=app_env(tmp_path, **env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_check_single_node_with_nothing_installed(tmp_path: Path) -> None:
    """check on the embedded defaults prints a ready table and exits 0; Postgres is stopped."""
    result = run_app(tmp_path, "check")
    assert result.returncode == 0, result.stderr
    table, _, details = result.stdout.partition("\n\n")
    lines = table.splitlines()
    assert lines[0].split() == ["backend", "status", "latency_ms", "address", "error"]
    statuses = {line.split()[0]: line.split()[1] for line in lines[1:]}
    assert statuses == {
        "postgres": "ok",
        "database": "ok",
        "state": "ok",
        "events": "ok",
        "vectors": "ok",
        "sessions": "ok",
        "conversations": "ok",
        "entities": "ok",
        "redis": "disabled",
        "elasticsearch": "disabled",
        "rabbitmq": "disabled",
    }
    # Below the table: check never migrates, so on a new database the entities report their
    # tables as pending migrations (serve applies them).
    assert details.startswith("entities details: ")
    reported = json.loads(details.removeprefix("entities details: "))
    assert "table agents does not exist" in reported["pending_migrations"]
    assert not (tmp_path / "data" / "postgres" / "postmaster.pid").exists()


def test_check_distributed_against_local_services(
    tmp_path: Path,
    redis_url: str,
    postgres_dsn: str,
    rabbitmq_url: str,
    unique_name: str,
    rabbitmq_exchange: str,
) -> None:
    """check in distributed mode with RabbitMQ reports every backend ready."""
    result = run_app(
        tmp_path,
        "check",
        DEPLOYMENT_MODE="distributed",
        VECTORS__BACKEND="faiss",  # the loopback Postgres 15 has no pgvector
        EVENT_BUS="rabbitmq",
        REDIS__URL=redis_url,
        POSTGRES__DSN=postgres_dsn,
        RABBITMQ__URL=rabbitmq_url,
        RABBITMQ__EXCHANGE=rabbitmq_exchange,
        STATE__NAMESPACE=unique_name,
    )
    assert result.returncode == 0, result.stderr
    table = result.stdout.partition("\n\n")[0]
    statuses = {line.split()[0]: line.split()[1] for line in table.splitlines()[1:]}
    assert statuses == {
        "redis": "ok",
        "postgres": "ok",
        "database": "ok",
        "rabbitmq": "ok",
        "state": "ok",
        "events": "ok",
        "entities": "ok",
        "vectors": "ok",
        "sessions": "ok",
        "conversations": "ok",
        "elasticsearch": "disabled",
    }


def test_bad_configuration_exits_2_with_one_message(tmp_path: Path) -> None:
    """An unknown mode exits 2 with a one-line message naming the variable; no traceback."""
    result = run_app(tmp_path, "check", DEPLOYMENT_MODE="cluster")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "DEPLOYMENT_MODE" in result.stderr
    assert "'single_node' or 'distributed'" in result.stderr


def postgres_processes_for(pgdata: Path) -> list[str]:
    """Command lines of running postgres processes that serve ``pgdata``."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if "postgres" in cmdline and str(pgdata) in cmdline:
            found.append(cmdline)
    return found


def test_unreachable_backend_exits_2_and_leaves_nothing_running(tmp_path: Path) -> None:
    """An unreachable Elasticsearch exits 2 naming it; the embedded Postgres is stopped again."""
    result = run_app(
        tmp_path,
        "check",
        ELASTICSEARCH__HOSTS="http://elastic:pw@127.0.0.1:1",
        ELASTICSEARCH__REQUEST_TIMEOUT_S="2",
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "error: elasticsearch failed to start (http://elastic:***@127.0.0.1:1)" in result.stderr
    assert "pw@" not in result.stderr
    pgdata = tmp_path / "data" / "postgres"
    assert (pgdata / "PG_VERSION").exists(), "the embedded Postgres was not even started"
    assert not (pgdata / "postmaster.pid").exists()
    assert postgres_processes_for(pgdata) == []


def test_unreachable_redis_in_distributed_mode_exits_2(tmp_path: Path, postgres_dsn: str) -> None:
    """distributed with an unreachable Redis exits 2 with the masked Redis address."""
    result = run_app(
        tmp_path,
        "check",
        DEPLOYMENT_MODE="distributed",
        VECTORS__BACKEND="faiss",  # the loopback Postgres 15 has no pgvector
        REDIS__URL="redis://:pw@127.0.0.1:1/0",
        POSTGRES__DSN=postgres_dsn,
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "error: redis failed to start (redis://:***@127.0.0.1:1/0)" in result.stderr
    assert "pw@" not in result.stderr


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_answer(
    process: subprocess.Popen[str], url: str, *, within_s: float = 90
) -> httpx.Response:
    """The first answer of a ``serve`` process at ``url``, polled until it listens; fails
    with its stderr if it exits first."""
    deadline = time.monotonic() + within_s
    while True:
        try:
            return httpx.get(url, timeout=5)
        except httpx.TransportError:
            assert process.poll() is None, process.communicate()[1]
            assert time.monotonic() < deadline, f"serve did not answer within {within_s} s"
            time.sleep(0.2)


def test_serve_answers_health_and_stops_cleanly(tmp_path: Path) -> None:
    """serve answers /health/live and /health/ready, and on SIGTERM stops its embedded Postgres."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "app", "serve", "--port", str(port)],
        cwd=tmp_path,
        env=app_env(tmp_path, API__AUTH="disabled"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        live = wait_for_answer(process, f"http://127.0.0.1:{port}/health/live")
        assert live.status_code == 200
        ready = httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=5)
        assert ready.status_code == 200
        assert ready.json()["backends"]["postgres"]["status"] == "ok"
        assert (tmp_path / "data" / "postgres" / "postmaster.pid").exists()
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    assert not (tmp_path / "data" / "postgres" / "postmaster.pid").exists()


def test_serve_on_a_port_in_use_exits_2_and_leaves_nothing_running(tmp_path: Path) -> None:
    """A port that is taken: exit 2 naming the address, and the backends stopped again."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_app(tmp_path, "serve", "--port", str(port), API__AUTH="disabled")
    assert result.returncode == 2, result.stderr
    assert f"error: could not serve on 127.0.0.1:{port}" in result.stderr
    pgdata = tmp_path / "data" / "postgres"
    assert not (pgdata / "postmaster.pid").exists()
    assert postgres_processes_for(pgdata) == []


@pytest.mark.parametrize("port", ["70000", "0", "http"])
def test_serve_refuses_a_port_out_of_range(tmp_path: Path, port: str) -> None:
    """--port outside 1-65535 (or not a number) exits 2 naming the range, before anything starts."""
    result = run_app(tmp_path, "serve", "--port", port, API__AUTH="disabled")
    assert result.returncode == 2
    assert f"must be an int from 1 to 65535, got '{port}'" in result.stderr
    assert not (tmp_path / "data" / "postgres").exists(), "nothing should have started"
