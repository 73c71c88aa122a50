"""The web layer's error mapping: typed argument errors are a 422, a stray ValueError a 500."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from uuid import UUID

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from structlog.testing import capture_logs

from app.errors import (
    ConfigurationError,
    DatabaseConnectionError,
    DatabaseNotConnectedError,
    EntityExistsError,
    EventArgumentError,
    EventArgumentTypeError,
    StateArgumentError,
    StateArgumentTypeError,
)
from app.events import DataEvent, InProcessEventBus
from app.state import InMemoryStateBackend
from app.web.body_reads import BodyReads
from app.web.errors import PUBLIC_MESSAGES, install_error_handlers
from app.web.guard import ApiGuard

Probe = Callable[[], Awaitable[None]]


async def bad_state_key() -> None:
    await InMemoryStateBackend().set_value("", 1)


async def unserialisable_state_value() -> None:
    await InMemoryStateBackend().set_value("k", object())


async def naive_event_timestamp() -> None:
    DataEvent("a.b", "r", "k", timestamp=datetime(2026, 1, 1))


async def bad_subscribe_pattern() -> None:
    InProcessEventBus().subscribe("a..b", _ignore)


async def _ignore(event: DataEvent) -> None:
    return None


async def stray_value_error() -> None:
    raise ValueError("secret internal detail: host db-7")


async def stray_type_error() -> None:
    raise TypeError("secret internal detail: NoneType")


async def misconfigured() -> None:
    raise ConfigurationError("REDIS__URL names secret-host")


TAKEN_ID = UUID("6f1c2e4a-0b7d-4c3e-9a51-2d8f7e6b5a49")


async def taken_entity_id() -> None:
    raise EntityExistsError("agent", TAKEN_ID)


async def database_connection_lost() -> None:
    raise DatabaseConnectionError(
        "create agent: the connection to Postgres failed: secret-host:5432 reset"
    )


async def database_pool_closed() -> None:
    raise DatabaseNotConnectedError("get agent: the connection pool is closed (secret)")


PROBES: dict[str, Probe] = {
    "bad_state_key": bad_state_key,
    "unserialisable_state_value": unserialisable_state_value,
    "naive_event_timestamp": naive_event_timestamp,
    "bad_subscribe_pattern": bad_subscribe_pattern,
    "stray_value_error": stray_value_error,
    "stray_type_error": stray_type_error,
    "misconfigured": misconfigured,
    "taken_entity_id": taken_entity_id,
    "database_connection_lost": database_connection_lost,
    "database_pool_closed": database_pool_closed,
}


def probe_app() -> FastAPI:
    """A FastAPI app with our error handlers and guard (as ``create_app`` installs them);
    each probe route runs one function."""
    app = FastAPI()
    router = APIRouter()
    for name, probe in PROBES.items():
        router.add_api_route(f"/probe/{name}", probe, methods=["POST"])
    install_error_handlers(app, [router])
    app.include_router(router)
    app.add_middleware(
        ApiGuard,
        tokens=[],
        auth_enabled=False,
        rate_limit=1000,
        window_seconds=1.0,
        body_reads=BodyReads(timeout_s=5.0, max_body_bytes=1024),
    )
    return app


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client on the probe app, which does not raise server errors at the client."""
    transport = httpx.ASGITransport(app=probe_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


@pytest.mark.parametrize(
    ("probe", "error_type", "expected_text"),
    [
        ("bad_state_key", StateArgumentError, "key must be a non-empty str"),
        ("unserialisable_state_value", StateArgumentTypeError, "JSON-serialisable"),
        ("naive_event_timestamp", EventArgumentError, "timezone-aware"),
        ("bad_subscribe_pattern", EventArgumentError, "empty word"),
    ],
)
async def test_typed_argument_errors_are_422_with_their_message(
    client: httpx.AsyncClient, probe: str, error_type: type[Exception], expected_text: str
) -> None:
    """A state or event argument error is a 422 invalid_input carrying the error's own text."""
    with pytest.raises(error_type, match=expected_text):
        await PROBES[probe]()
    response = await client.post(f"/probe/{probe}")
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_input"
    assert expected_text in error["message"]


@pytest.mark.parametrize("probe", ["stray_value_error", "stray_type_error", "misconfigured"])
async def test_other_value_and_type_errors_are_500_with_the_fixed_message(
    client: httpx.AsyncClient, probe: str
) -> None:
    """A plain ValueError/TypeError or a server-side ValueError is a 500 that hides its text."""
    with capture_logs() as logs:
        response = await client.post(f"/probe/{probe}")
    assert response.status_code == 500, response.text
    error = response.json()["error"]
    assert error["code"] == "internal_error"
    assert error["message"] == PUBLIC_MESSAGES["internal_error"]
    assert "secret" not in response.text
    assert any(entry["log_level"] == "error" for entry in logs)


def test_argument_errors_are_also_the_builtins() -> None:
    """The typed argument errors still are ValueError/TypeError, so old callers keep working."""
    assert issubclass(StateArgumentError, ValueError)
    assert issubclass(StateArgumentTypeError, TypeError)
    assert issubclass(EventArgumentError, ValueError)
    assert issubclass(EventArgumentTypeError, TypeError)


async def test_a_taken_entity_id_is_409_naming_type_and_id(client: httpx.AsyncClient) -> None:
    """EntityExistsError is a 409 already_exists whose message and details name the entity
    type and the id."""
    response = await client.post("/probe/taken_entity_id")
    assert response.status_code == 409, response.text
    error = response.json()["error"]
    assert error["code"] == "already_exists"
    assert f"agent {TAKEN_ID} already exists" in error["message"]
    assert error["details"] == {"entity_type": "agent", "entity_id": str(TAKEN_ID)}


@pytest.mark.parametrize("probe", ["database_connection_lost", "database_pool_closed"])
async def test_a_database_outage_is_503_with_the_fixed_message(
    client: httpx.AsyncClient, probe: str
) -> None:
    """A lost Postgres connection or a closed pool is a 503 database_unavailable whose text
    stays in the log, with a Retry-After (its message says to retry later)."""
    with capture_logs() as logs:
        response = await client.post(f"/probe/{probe}")
    assert response.status_code == 503, response.text
    assert int(response.headers["Retry-After"]) >= 1
    error = response.json()["error"]
    assert error["code"] == "database_unavailable"
    assert error["message"] == PUBLIC_MESSAGES["database_unavailable"]
    assert "secret" not in response.text
    assert any(entry["log_level"] == "error" for entry in logs)
