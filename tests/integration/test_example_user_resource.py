"""The README's own-resource example (``examples/audit_log.py``), run exactly as it stands
through every entry point: ``DataLayer``, ``create_app`` and ``python -m app check|serve``."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, MutableMapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import structlog
from dependency_injector import providers

from app import DataEvent, DataLayer
from app.errors import ResourceStartError
from app.web import create_app
from containers import Managed
from examples.audit_log import AuditedContainer, AuditTrail
from settings import Settings
from tests.conftest import serve_app
from tests.integration.test_cli import ROOT, app_env, free_port, wait_for_answer

pytestmark = pytest.mark.integration

SPEC = "examples.audit_log:AuditedContainer"


def audited(settings: Settings) -> AuditedContainer:
    """The example's container on the test's isolated settings."""
    container = AuditedContainer()
    container.settings.override(providers.Object(settings))
    return container


def lifecycle_events(logs: Sequence[MutableMapping[str, Any]], event: str) -> list[str]:
    """The resources named by ``event`` log lines, in the order they were logged."""
    return [str(entry["resource"]) for entry in logs if entry["event"] == event]


async def test_data_layer_starts_pings_and_stops_the_users_resource(
    app_settings: Settings,
) -> None:
    """DataLayer starts the audit trail after the bus it uses, reports it in health, and stops
    it before the bus; the event published in between is in the trail's file."""
    container = audited(app_settings)
    # structlog's configuration is the logging resource's to set; keep the test's capture.
    container.logging.override(providers.Object(None))
    with structlog.testing.capture_logs() as logs:
        async with DataLayer(container=container) as data:
            trail: AuditTrail = data.resource("audit")
            await data.events.publish(DataEvent("user.created", "users", "ada"))
            await data.events.drain(5.0)
            health = await data.health()
            assert health.details["audit"] == "ok"
            assert health.ok
    started = lifecycle_events(logs, "resources.started")
    stopped = lifecycle_events(logs, "resources.stopped")
    assert started.index("events") < started.index("audit")
    assert stopped.index("audit") < stopped.index("events")
    lines = trail.path.read_text().splitlines()
    assert [json.loads(line)["key"] for line in lines] == ["ada"]


async def test_create_app_runs_the_users_resource_in_its_lifespan(
    app_settings: Settings,
) -> None:
    """create_app(container) starts the audit trail with the app and lists it in readiness."""
    container = audited(app_settings)
    async with serve_app(container) as api:
        assert container.audit.initialized
        ready = await api.get("/health/ready")
        assert ready.status_code == 200
        assert ready.json()["backends"]["audit"]["status"] == "ok"
    assert not container.audit.initialized


async def test_a_broken_resource_after_the_users_rolls_it_back(app_settings: Settings) -> None:
    """When a later start fails, the already started audit trail is stopped again."""

    async def never_starts(_: object) -> AsyncIterator[None]:
        if not isinstance(_, AuditTrail):
            yield  # never: the audit trail is what it gets
        raise ConnectionRefusedError("nothing listens")

    class Broken(AuditedContainer):
        """The example plus a resource that needs the audit trail and cannot start."""

        mirror = providers.Resource(never_starts, AuditedContainer.audit)
        mirror_lifecycle = Managed("mirror", address="tcp://127.0.0.1:1")

    container = Broken()
    container.settings.override(providers.Object(app_settings))
    container.logging.override(providers.Object(None))
    with (
        structlog.testing.capture_logs() as logs,
        pytest.raises(ResourceStartError, match=r"mirror failed to start \(tcp://127.0.0.1:1\)"),
    ):
        await DataLayer(container=container).start()
    assert not container.audit.initialized
    started = lifecycle_events(logs, "resources.started")
    assert "audit" in started
    assert sorted(lifecycle_events(logs, "resources.stopped")) == sorted(started)


def example_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The CLI tests' clean environment, with the repository importable (the user's module)."""
    return app_env(tmp_path, PYTHONPATH=str(ROOT), **extra)


def run_cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m app ARGS`` in ``tmp_path`` with the example importable."""
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        cwd=tmp_path,
        env=example_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_check_with_the_users_container_reports_its_resource(tmp_path: Path) -> None:
    """``check --container`` starts, pings and stops the audit trail with everything else."""
    result = run_cli(tmp_path, "check", "--container", SPEC)
    assert result.returncode == 0, result.stderr
    table = result.stdout.partition("\n\n")[0]  # details follow a blank line
    rows = {line.split()[0]: line.split() for line in table.splitlines()[1:]}
    assert rows["audit"][1] == "ok"
    assert rows["audit"][3] == str(tmp_path / "data" / "audit.jsonl")
    assert (tmp_path / "data" / "audit.jsonl").exists()


def test_serve_with_the_users_container_runs_its_resource(tmp_path: Path) -> None:
    """``serve --container`` reports the audit trail in /health/ready and stops cleanly."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "app", "serve", "--port", str(port), "--container", SPEC],
        cwd=tmp_path,
        env=example_env(tmp_path, API__AUTH="disabled"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        ready = wait_for_answer(process, f"http://127.0.0.1:{port}/health/ready")
        assert ready.status_code == 200
        assert ready.json()["backends"]["audit"]["status"] == "ok"
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("examples.audit_log", "--container must be 'package.module:factory'"),
        ("examples.no_such_module:Thing", "module 'examples.no_such_module' does not import"),
        ("examples.audit_log:Missing", "examples.audit_log has no attribute 'Missing'"),
        ("settings:load_settings", "returned Settings, expected an instance of"),
        ("examples.audit_log:AuditTrail", "must be a container class or a function"),
    ],
)
def test_a_bad_container_path_exits_2_with_one_line(
    tmp_path: Path, spec: str, message: str
) -> None:
    """A --container that does not import or is not a container: exit 2, one clear line, no
    traceback, nothing started (no embedded Postgres data directory is made)."""
    result = run_cli(tmp_path, "check", "--container", spec)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert message in result.stderr
    assert not (tmp_path / "data" / "postgres").exists()


def test_create_app_accepts_the_users_container(app_settings: Settings) -> None:
    """create_app builds its lifecycle from the container it is given."""
    app = create_app(audited(app_settings))
    assert "audit" in {unit.name for unit in app.state.lifecycle.units}
    assert app.state.container.declarative_parent is AuditedContainer
