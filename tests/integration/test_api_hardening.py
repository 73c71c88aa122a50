"""The HTTP API's edges: body size, what 5xx and health say in public, lock keys, OpenAPI auth."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import structlog
from dependency_injector import providers
from structlog.testing import capture_logs

from app.errors import PublishError, StateBackendUnavailableError
from app.state import InMemoryStateBackend
from app.web.errors import PUBLIC_MESSAGES, STATUS_BY_ERROR
from settings import Settings
from tests.conftest import Fakes, serve_app
from tests.integration.test_api import assert_error, with_api

pytestmark = pytest.mark.integration

VECTOR = [0.1, 0.2, 0.3, 0.4]


async def test_a_body_over_the_limit_is_413_before_it_is_read(
    overridden_container: Any, fakes: Fakes, app_settings: Settings
) -> None:
    """A declared Content-Length over API__MAX_BODY_BYTES is a 413 naming the setting; nothing
    is stored, and a body at the limit still goes through."""
    body = b'{"vector": [0.1, 0.2, 0.3, 0.4]}'
    settings = with_api(app_settings, max_body_bytes=len(body))
    overridden_container.settings.override(providers.Object(settings))
    async with serve_app(overridden_container) as api:
        headers = {"Content-Type": "application/json"}
        too_big = await api.put("/v1/vectors/docs/a", content=body + b" ", headers=headers)
        error = assert_error(too_big, 413, "too_large")
        assert f"API__MAX_BODY_BYTES={len(body)}" in error["message"]
        assert too_big.headers["X-RateLimit-Limit"] == str(settings.api.rate_limit)
        assert fakes.vectors.data == {}
        at_limit = await api.put("/v1/vectors/docs/a", content=body, headers=headers)
        assert at_limit.status_code == 200, at_limit.text
    assert set(fakes.vectors.data["docs"]) == {"a"}


async def test_a_chunked_body_over_the_limit_is_413(
    overridden_container: Any, fakes: Fakes, app_settings: Settings
) -> None:
    """A body sent without a Content-Length is counted as it arrives: over the limit, a 413."""
    settings = with_api(app_settings, max_body_bytes=1000)
    overridden_container.settings.override(providers.Object(settings))

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"vector": [0.1, 0.2, 0.3, 0.4], "metadata": {"pad": "'
        for _ in range(20):
            yield b"x" * 100
        yield b'"}}'

    async with serve_app(overridden_container) as api:
        response = await api.put(
            "/v1/vectors/docs/a", content=chunks(), headers={"Content-Type": "application/json"}
        )
        assert "content-length" not in response.request.headers
    assert_error(response, 413, "too_large")
    assert fakes.vectors.data == {}


def test_every_server_error_code_has_a_public_message() -> None:
    """Each 5xx code the typed errors map to has a fixed message to show instead of the error."""
    codes = {code for _type, status, code in STATUS_BY_ERROR if status >= 500}
    assert codes | {"internal_error"} <= set(PUBLIC_MESSAGES)


class UnreachableState(InMemoryStateBackend):
    """A state backend whose sessions fail the way an unreachable Redis does."""

    async def get_session(self, session_id: str, *, touch: bool = False) -> Any:
        raise StateBackendUnavailableError("Redis at 10.1.2.3:6379 did not answer: timeout")


async def test_server_errors_show_a_fixed_message_and_log_the_detail(
    overridden_container: Any, fakes: Fakes
) -> None:
    """A 503 carries its code's fixed message, not the driver's text (hosts, queues); the
    detail is logged with the request id."""
    state = UnreachableState()
    overridden_container.state_backend.override(providers.Object(state))

    async def failing_publish(*_args: Any, **_kwargs: Any) -> None:
        raise PublishError("broker amqp://guest@10.9.9.9:5672 did not confirm")

    fakes.bus.publish = failing_publish  # type: ignore[method-assign]
    async with serve_app(overridden_container) as api:
        with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
            session = await api.get("/v1/sessions/s1", headers={"X-Request-ID": "req-503"})
            event = await api.post(
                "/v1/events", json={"type": "user.created", "resource": "user", "key": "u1"}
            )
    await state.close()
    error = assert_error(session, 503, "state_unavailable")
    assert error["message"] == PUBLIC_MESSAGES["state_unavailable"]
    published = assert_error(event, 503, "publish_failed")
    assert published["message"] == PUBLIC_MESSAGES["publish_failed"]
    logged = [entry for entry in logs if entry["event"] == "api.backend_error"]
    assert logged[0]["request_id"] == "req-503"
    assert "10.1.2.3:6379" in logged[0]["error"]


async def test_readiness_is_public_without_addresses_or_errors(
    overridden_container: Any,
) -> None:
    """/health/ready tells anyone each backend's status and latency (and the entities' lag as
    numbers), never its address or error; HEAD works for probes."""
    async with serve_app(overridden_container) as api:
        ready = await api.get("/health/ready", headers={"Authorization": ""})
        head = await api.head("/health/live", headers={"Authorization": ""})
    assert ready.status_code == 200, ready.text
    for name, backend in ready.json()["backends"].items():
        expected = {"status", "latency_ms"} | ({"details"} if name == "entities" else set())
        assert set(backend) == expected, name
    details = ready.json()["backends"]["entities"]["details"]
    assert details["relay:bus"]["lag"] == 0
    assert "last_error" not in details["relay:bus"]  # texts stay private
    assert head.status_code == 200


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/v1/locks/job:extend:extend"), ("DELETE", "/v1/locks/job:extend")],
)
async def test_a_lock_key_ending_in_extend_is_refused(
    overridden_container: Any, method: str, path: str
) -> None:
    """A key ending in ':extend' has no URL of its own: refused with a 422 naming the rule,
    instead of acting on another key."""
    async with serve_app(overridden_container) as api:
        response = await api.request(method, path, json={"ttl_seconds": 5})
    error = assert_error(response, 422, "invalid_request")
    assert ":extend" in error["details"][0]["message"]


async def test_openapi_declares_the_bearer_token_on_v1_routes(overridden_container: Any) -> None:
    """The schema says /v1 and /api operations need a bearer token (so /docs can send one);
    health and the docs themselves need none."""
    async with serve_app(overridden_container) as api:
        schema = (await api.get("/openapi.json")).json()
    scheme = schema["components"]["securitySchemes"]["bearerAuth"]
    assert scheme == {"type": "http", "scheme": "bearer"}
    for path, operations in schema["paths"].items():
        for operation in operations.values():
            protected = path.startswith(("/v1/", "/api/"))
            expected: list[dict[str, list[str]]] | None = (
                [{"bearerAuth": []}] if protected else None
            )
            assert operation.get("security") == expected, path
