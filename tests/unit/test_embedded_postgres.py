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
        assert embedded_postgres._get_server(tmp_path) == "server"
    assert [entry["event"] for entry in logs] == ["postgres.embedded_start_retry"]


def test_a_single_user_backends_pid_file_is_not_signalled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """initdb's backend writes a negative PID: killing it would signal a process group."""
    (tmp_path / "postmaster.pid").write_text("-17374\n/data\n")
    signalled: list[int] = []
    monkeypatch.setattr(os, "kill", lambda pid, sig: signalled.append(pid))
    embedded_postgres._stop_orphan(tmp_path)
    assert signalled == []
