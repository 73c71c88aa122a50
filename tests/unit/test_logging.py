"""The configured JSON log output: secrets masked, tracebacks included."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from app.logging import configure_logging
from settings import LogSettings


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers, root.level = handlers, level
    structlog.reset_defaults()


@pytest.mark.usefixtures("restore_logging")
def test_a_traceback_is_masked_like_any_other_text(capsys: pytest.CaptureFixture[str]) -> None:
    """A driver error quoting its URL ends up in the rendered traceback: masked there too."""
    configure_logging(LogSettings.model_validate({"format": "json", "level": "INFO"}))
    try:
        raise ConnectionError("cannot reach postgresql://app:hunter2@db:5432/app")
    except ConnectionError:
        structlog.get_logger("test").exception("backend.failed", address="redis://:hunter2@cache/0")
    line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert "hunter2" not in json.dumps(line)
    assert "postgresql://app:***@db:5432/app" in line["exception"]
    assert line["address"] == "redis://:***@cache/0"
