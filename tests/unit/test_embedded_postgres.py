"""The embedded Postgres start: pgserver's transient failures are retried, orphans stopped."""

from __future__ import annotations

import importlib
import os
import warnings
from pathlib import Path
from types import ModuleType

import pytest
from structlog.testing import capture_logs

from app.backends import embedded_postgres


def pgserver_module() -> ModuleType:
    with warnings.catch_warnings():  # as the app imports it (XDG_RUNTIME_DIR unset here)
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
        return importlib.import_module("pgserver.postgres_server")


def test_a_failed_parse_of_the_pid_file_is_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pgserver's assertion on postmaster.pid (seen once, mid-initdb) gets a second try."""
    outcomes: list[object] = [AssertionError("_lines: ... lines: ['-17374', ...]"), "server"]

    def get_server(pgdata: Path, cleanup_mode: str) -> object:
        outcome = outcomes.pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    monkeypatch.setattr(pgserver_module(), "get_server", get_server)
    monkeypatch.setattr(embedded_postgres, "RETRY_PAUSE_S", 0.0)
    with capture_logs() as logs:
        assert embedded_postgres._get_server(tmp_path / "postgres") == "server"
    assert [entry["event"] for entry in logs] == ["postgres.embedded_start_retry"]


def test_a_single_user_backends_pid_file_is_not_signalled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """initdb's backend writes a negative PID: killing it would signal a process group; left
    behind by a backend that has ended, the file (which pgserver cannot parse, so every later
    start failed on it) is removed."""
    lock = tmp_path / "postmaster.pid"
    lock.write_text("-17374\n/data\n")
    calls: list[tuple[int, int]] = []

    def kill(pid: int, sig: int) -> None:
        calls.append((pid, sig))
        raise ProcessLookupError(pid)

    monkeypatch.setattr(os, "kill", kill)
    with capture_logs() as logs:
        embedded_postgres._stop_orphan(tmp_path)
    assert calls == [(17374, 0)]  # only asked whether it lives; never signalled
    assert not lock.exists()
    assert [entry["event"] for entry in logs] == ["postgres.embedded_stale_lock_removed"]


def test_a_live_single_user_backends_file_is_left_until_it_ends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While initdb's backend still runs, its file stays; once it ends, the file goes, unless
    something else has written the file meanwhile."""
    lock = tmp_path / "postmaster.pid"
    lock.write_text("-17374\n/data\n")
    answers = [True, True, False]

    def kill(pid: int, sig: int) -> None:
        assert (pid, sig) == (17374, 0)
        assert lock.exists()
        if not answers.pop(0):
            lock.write_text("4242\n/data\n")  # a postmaster took the directory meanwhile
            raise ProcessLookupError(pid)

    monkeypatch.setattr(os, "kill", kill)
    embedded_postgres._stop_orphan(tmp_path)
    assert answers == []
    assert lock.read_text().startswith("4242")


def test_a_failed_initdb_of_a_new_directory_is_retried_from_scratch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """initdb failing half-way on a new directory leaves PG_VERSION but no postgres role; the
    retry must not start on that half-made cluster, so it starts from an empty directory."""
    pgdata = tmp_path / "postgres"
    seen_on_attempt: list[bool] = []

    def get_server(path: Path, cleanup_mode: str) -> object:
        seen_on_attempt.append((path / "PG_VERSION").exists())
        if len(seen_on_attempt) == 1:
            path.mkdir(parents=True, exist_ok=True)
            (path / "PG_VERSION").write_text("16\n")
            raise OSError("initdb: could not create directory: Permission denied")
        return "server"

    monkeypatch.setattr(pgserver_module(), "get_server", get_server)
    monkeypatch.setattr(embedded_postgres, "RETRY_PAUSE_S", 0.0)
    with capture_logs() as logs:
        assert embedded_postgres._get_server(pgdata) == "server"
    assert seen_on_attempt == [False, False]
    assert "postgres.embedded_half_made_removed" in [entry["event"] for entry in logs]


def test_an_existing_cluster_is_never_removed_after_a_failed_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A directory that already held a cluster keeps it when a start fails: only what a
    failed initdb of a new directory made is removed."""
    pgdata = tmp_path / "postgres"
    pgdata.mkdir()
    (pgdata / "PG_VERSION").write_text("16\n")
    (pgdata / "base").mkdir()
    outcomes: list[object] = [OSError("pg_ctl: could not start server"), "server"]

    def get_server(path: Path, cleanup_mode: str) -> object:
        outcome = outcomes.pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    monkeypatch.setattr(pgserver_module(), "get_server", get_server)
    monkeypatch.setattr(embedded_postgres, "RETRY_PAUSE_S", 0.0)
    assert embedded_postgres._get_server(pgdata) == "server"
    assert (pgdata / "base").is_dir()
