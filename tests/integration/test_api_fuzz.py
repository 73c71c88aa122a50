"""Property-based fuzzing of the API against its own OpenAPI schema (bounded in examples)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, settings
from schemathesis.checks import positive_data_acceptance

from app.web import create_app
from containers import create_container
from settings import load_settings
from tests.conftest import API_TOKEN

pytestmark = pytest.mark.integration

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}

# Vectors the schema allows can still be refused with 422: all-zero or float32-underflowing
# vectors have no direction, and filters/metadata have rules JSON Schema cannot state. For
# these routes "schema-valid implies 2xx" does not hold; every other check still runs.
VECTOR_BODIES = {
    ("PUT", "/v1/vectors/{namespace}/{vector_id}"),
    ("POST", "/v1/vectors/{namespace}:batch"),
    ("POST", "/v1/vectors/{namespace}:query"),
}
# The entity API (/api) refuses schema-valid requests with 422 by rules JSON Schema cannot
# state: an opaque cursor it did not hand out, an If-Match that names no version, a parent
# id that names no live entity, a PATCH whose merged result breaks the model.
ENTITY_PREFIX = "/api/"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def served_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The real app (single_node, embedded Postgres) under uvicorn in a background thread."""
    root: Path = tmp_path_factory.mktemp("fuzz")
    app_settings = load_settings(
        data_dir=root / "data",
        faiss={"index_path": root / "faiss", "dimension": 4},
        api={"tokens": [API_TOKEN], "rate_limit": 1_000_000},
        log={"level": "ERROR"},
    )
    app = create_app(create_container(app_settings))
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive(), "the server thread ended before the server started"
        assert time.monotonic() < deadline, "the server did not start within 60 s"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    app.state.streams_stop.set()
    server.should_exit = True
    thread.join(30)
    assert not thread.is_alive(), "the server did not stop"


def app_schema() -> schemathesis.BaseSchema:
    """The app's own OpenAPI schema, built without starting anything."""
    container = create_container(load_settings(api={"tokens": [API_TOKEN]}))
    document = create_app(container).openapi()
    container.unwire()
    loaded = schemathesis.openapi.from_dict(document)
    # A body over API__MAX_BODY_BYTES is refused with 413 whatever it holds: generated invalid
    # data (a batch past maxItems) can be that large.
    rejection = loaded.config.checks.negative_data_rejection
    rejection.expected_statuses = [*rejection.expected_statuses, "413"]
    # The event stream never ends by itself; it has its own tests.
    return loaded.exclude(path="/v1/events/stream")


schema = app_schema()


@schema.parametrize()
@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_no_server_errors_and_responses_match_the_schema(
    case: schemathesis.Case[Any], served_api: str
) -> None:
    """Generated requests never get a 5xx, and every response conforms to the schema."""
    semantic = (case.method, case.path) in VECTOR_BODIES or case.path.startswith(ENTITY_PREFIX)
    excluded = [positive_data_acceptance] if semantic else []
    case.call_and_validate(base_url=served_api, headers=AUTH, excluded_checks=excluded)
