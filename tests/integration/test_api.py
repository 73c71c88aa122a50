"""The HTTP API on the real single_node stack (embedded Postgres, memory state, in-process bus)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
from dependency_injector import providers
from starlette.applications import Starlette
from starlette.routing import Mount
from structlog.testing import capture_logs

from app.errors import BackendNotConfiguredError, ConfigurationError, ResourceStopError
from app.web import create_app
from containers import Lifecycle, create_container
from settings import ApiSettings, Settings, load_settings
from tests.conftest import API_TOKEN, Fakes, serve_app
from tests.fakes.vectors import FakeVectorIndex

pytestmark = pytest.mark.integration


def with_api(settings: Settings, **api: Any) -> Settings:
    """``settings`` with some API__* values replaced (validated like the environment's)."""
    section = ApiSettings.model_validate({**settings.api.model_dump(), **api})
    return settings.model_copy(update={"api": section})


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The response is our JSON error shape with this status and code."""
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"code", "message", "request_id", "details"}
    assert error["code"] == code
    assert error["request_id"] == response.headers["X-Request-ID"]
    return error  # type: ignore[no-any-return]


async def test_health_is_public(api: httpx.AsyncClient) -> None:
    """/health/live and /health/ready answer without a token, ready lists every backend."""
    live = await api.get("/health/live", headers={"Authorization": ""})
    assert live.status_code == 200
    ready = await api.get("/health/ready", headers={"Authorization": ""})
    assert ready.status_code == 200
    backends = ready.json()["backends"]
    assert {name for name, b in backends.items() if b["status"] == "ok"} == {
        "postgres",
        "database",
        "state",
        "events",
        "vectors",
        "sessions",
        "conversations",
        "entities",
    }
    assert {name for name, b in backends.items() if b["status"] == "disabled"} == {
        "redis",
        "elasticsearch",
        "rabbitmq",
    }


async def test_vector_round_trip(api: httpx.AsyncClient) -> None:
    """PUT, GET, query, batch and DELETE a vector through the real index."""
    put = await api.put("/v1/vectors/docs/a", json={"vector": [1, 0, 0, 0], "metadata": {"k": 1}})
    assert put.status_code == 200
    assert put.json() == {"namespace": "docs", "id": "a"}
    batch = await api.post(
        "/v1/vectors/docs:batch",
        json={"items": [{"id": "b", "vector": [0, 1, 0, 0]}, {"id": "c", "vector": [1, 1, 0, 0]}]},
    )
    assert batch.json() == {"namespace": "docs", "upserted": 2}
    got = await api.get("/v1/vectors/docs/a")
    assert got.json() == {
        "namespace": "docs",
        "id": "a",
        "vector": [1, 0, 0, 0],
        "metadata": {"k": 1},
    }
    query = await api.post("/v1/vectors/docs:query", json={"vector": [1, 0, 0, 0], "top_k": 2})
    matches = query.json()["matches"]
    assert [m["id"] for m in matches] == ["a", "c"]
    assert matches[0]["score"] == pytest.approx(1.0)
    filtered = await api.post(
        "/v1/vectors/docs:query", json={"vector": [1, 0, 0, 0], "filter": {"k": 1}}
    )
    assert [m["id"] for m in filtered.json()["matches"]] == ["a"]
    assert (await api.delete("/v1/vectors/docs/a")).status_code == 204
    assert_error(await api.get("/v1/vectors/docs/a"), 404, "not_found")
    assert_error(await api.delete("/v1/vectors/docs/a"), 404, "not_found")


async def test_a_batch_counts_a_repeated_id_once(api: httpx.AsyncClient) -> None:
    """`upserted` is the number of ids written: a repeated id's last item wins, counted once."""
    items = [
        {"id": "a", "vector": [1, 0, 0, 0]},
        {"id": "b", "vector": [0, 1, 0, 0]},
        {"id": "a", "vector": [0, 0, 1, 0]},
    ]
    batch = await api.post("/v1/vectors/docs:batch", json={"items": items})
    assert batch.json() == {"namespace": "docs", "upserted": 2}
    assert (await api.get("/v1/vectors/docs/a")).json()["vector"] == [0, 0, 1, 0]


async def test_ids_with_slashes_round_trip(api: httpx.AsyncClient) -> None:
    """An id with '/' stored by a batch or a PUT is read and deleted by its path."""
    batch = await api.post(
        "/v1/vectors/docs:batch", json={"items": [{"id": "guides/a.md", "vector": [1, 0, 0, 0]}]}
    )
    assert batch.status_code == 200
    put = await api.put("/v1/vectors/docs/guides/b%2Fc.md", json={"vector": [0, 1, 0, 0]})
    assert put.json() == {"namespace": "docs", "id": "guides/b/c.md"}
    assert (await api.get("/v1/vectors/docs/guides/a.md")).json()["id"] == "guides/a.md"
    assert (await api.delete("/v1/vectors/docs/guides/b/c.md")).status_code == 204
    assert_error(await api.get("/v1/vectors/docs/guides/b/c.md"), 404, "not_found")
    control = await api.put("/v1/vectors/docs/line%0Abreak", json={"vector": [1, 1, 0, 0]})
    assert control.json() == {"namespace": "docs", "id": "line\nbreak"}
    bad_namespace = await api.put("/v1/vectors/Docs!/a%0Ab", json={"vector": [1, 1, 0, 0]})
    assert_error(bad_namespace, 422, "invalid_request")


async def test_vector_input_errors_are_422_and_change_nothing(api: httpx.AsyncClient) -> None:
    """Wrong dimension, a zero vector and a bad namespace give 422 naming the problem."""
    await api.put("/v1/vectors/docs/a", json={"vector": [1, 0, 0, 0]})
    wrong = assert_error(
        await api.put("/v1/vectors/docs/a", json={"vector": [1, 2]}), 422, "invalid_request"
    )
    assert wrong["details"][0]["field"] == "body.vector"
    assert "4 items" in wrong["details"][0]["message"]
    zero = assert_error(
        await api.put("/v1/vectors/docs/a", json={"vector": [0, 0, 0, 0]}), 422, "invalid_input"
    )
    assert "zero" in zero["message"]
    bad_namespace = assert_error(
        await api.put("/v1/vectors/Bad..NS/a", json={"vector": [1, 0, 0, 0]}),
        422,
        "invalid_request",
    )
    assert bad_namespace["details"][0]["field"] == "path.namespace"
    missing = assert_error(await api.put("/v1/vectors/docs/a", json={}), 422, "invalid_request")
    assert missing["details"][0]["field"] == "body.vector"
    assert (await api.get("/v1/vectors/docs/a")).json()["vector"] == [1, 0, 0, 0]


async def test_sessions(api: httpx.AsyncClient) -> None:
    """PUT, GET and DELETE a session; a missing one is 404."""
    put = await api.put("/v1/sessions/s1", json={"data": {"user": "u1"}, "ttl_seconds": 60})
    assert put.json() == {"id": "s1", "data": {"user": "u1"}}
    assert (await api.get("/v1/sessions/s1")).json()["data"] == {"user": "u1"}
    assert (await api.delete("/v1/sessions/s1")).status_code == 204
    assert_error(await api.get("/v1/sessions/s1"), 404, "not_found")
    assert_error(
        await api.put("/v1/sessions/s1", json={"data": {}, "ttl_seconds": 0}),
        422,
        "invalid_request",
    )
    not_text = b'{"data": {"a": "\\ud800"}}'  # an unpaired surrogate: never stored
    refused = await api.put(
        "/v1/sessions/s2", content=not_text, headers={"Content-Type": "application/json"}
    )
    error = assert_error(refused, 422, "invalid_request")
    assert "unpaired surrogate escape" in error["details"][0]["message"]
    assert_error(await api.get("/v1/sessions/s2"), 404, "not_found")
    malformed = await api.put(
        "/v1/sessions/s2", content=b'{"data": {', headers={"Content-Type": "application/json"}
    )
    error = assert_error(malformed, 422, "invalid_request")
    assert error["details"][0]["message"].startswith("JSON decode error: ")


async def test_locks_belong_to_the_caller(app_settings: Settings) -> None:
    """A lock taken by one token is 409 for another; only its owner extends and releases it."""
    settings = with_api(app_settings, tokens=[API_TOKEN, "other"])
    async with serve_app(create_container(settings)) as api:
        other = {"Authorization": "Bearer other"}
        first = await api.post("/v1/locks/job-1", json={"ttl_seconds": 30})
        assert first.status_code == 200
        assert first.json()["owner"].startswith("token:")
        assert_error(
            await api.post("/v1/locks/job-1", json={"ttl_seconds": 30}, headers=other),
            409,
            "lock_held",
        )
        assert_error(
            await api.post("/v1/locks/job-1:extend", json={"ttl_seconds": 5}, headers=other),
            409,
            "lock_not_held",
        )
        assert_error(await api.delete("/v1/locks/job-1", headers=other), 409, "lock_not_held")
        assert (
            await api.post("/v1/locks/job-1:extend", json={"ttl_seconds": 5})
        ).status_code == 200
        assert (await api.delete("/v1/locks/job-1")).status_code == 204
        assert (
            await api.post("/v1/locks/job-1", json={"ttl_seconds": 30}, headers=other)
        ).status_code == 200


async def test_publish_event(api: httpx.AsyncClient) -> None:
    """POST /v1/events is accepted with the event's id; a malformed type is 422."""
    response = await api.post(
        "/v1/events",
        json={"type": "user.created", "resource": "users", "key": "u1", "payload": {"a": 1}},
    )
    assert response.status_code == 202
    assert response.json()["type"] == "user.created"
    assert_error(
        await api.post("/v1/events", json={"type": "user.*", "resource": "r", "key": "k"}),
        422,
        "invalid_request",
    )


async def test_missing_or_wrong_token_is_401(api: httpx.AsyncClient) -> None:
    """No token or a wrong one gives 401 with WWW-Authenticate: Bearer."""
    for headers in (
        {"Authorization": ""},
        {"Authorization": "Bearer nope"},
        {"Authorization": "Basic x"},
    ):
        response = await api.get("/v1/sessions/x", headers=headers)
        assert_error(response, 401, "unauthorized")
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert "X-RateLimit-Remaining" in response.headers


async def test_requests_without_a_valid_token_are_limited_per_address(
    app_settings: Settings,
) -> None:
    """Wrong tokens count against the client address: 401s with headers, then 429; a valid
    token has its own budget."""
    settings = with_api(app_settings, rate_limit=2, rate_limit_window_seconds=30.0)
    async with serve_app(create_container(settings)) as api:
        wrong = {"Authorization": "Bearer guess"}
        first, second = [await api.get("/v1/sessions/x", headers=wrong) for _ in range(2)]
        assert_error(first, 401, "unauthorized")
        assert (first.headers["X-RateLimit-Limit"], first.headers["X-RateLimit-Remaining"]) == (
            "2",
            "1",
        )
        assert second.headers["X-RateLimit-Remaining"] == "0"
        assert_error(await api.get("/v1/sessions/x", headers=wrong), 429, "rate_limited")
        assert_error(await api.get("/v1/sessions/x"), 404, "not_found")


async def test_auth_and_rate_limit_hold_under_a_mount(app_settings: Settings) -> None:
    """Mounted under /api (root_path set, as behind a proxy), /api/v1 still needs a token."""
    app = create_app(create_container(with_api(app_settings, rate_limit=2)))
    outer = Starlette(routes=[Mount("/api", app=app)])
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=outer, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            refused = await client.get("/api/v1/sessions/x")
            assert_error(refused, 401, "unauthorized")
            authorised = {"Authorization": f"Bearer {API_TOKEN}"}
            answered = await client.get("/api/v1/sessions/x", headers=authorised)
            assert_error(answered, 404, "not_found")
            assert answered.headers["X-RateLimit-Limit"] == "2"
            assert (await client.get("/api/health/live")).status_code == 200


async def test_rate_limit_then_429(app_settings: Settings) -> None:
    """Exactly `limit` requests pass, then 429 with Retry-After; headers on every response."""
    settings = with_api(app_settings, rate_limit=3, rate_limit_window_seconds=30.0)
    async with serve_app(create_container(settings)) as api:
        seen = []
        for _ in range(3):
            response = await api.get("/v1/sessions/none")
            assert response.status_code == 404
            assert response.headers["X-RateLimit-Limit"] == "3"
            seen.append(response.headers["X-RateLimit-Remaining"])
        assert seen == ["2", "1", "0"]
        limited = await api.get("/v1/sessions/none")
        assert_error(limited, 429, "rate_limited")
        assert limited.headers["Retry-After"] == "30"
        assert limited.headers["X-RateLimit-Remaining"] == "0"
        assert (await api.get("/health/live")).status_code == 200


async def test_request_id_is_kept_or_generated(api: httpx.AsyncClient) -> None:
    """A given X-Request-ID is returned (also in error bodies); otherwise one is generated."""
    response = await api.put(
        "/v1/vectors/docs/a", json={"vector": [1, 2]}, headers={"X-Request-ID": "req-42"}
    )
    assert response.headers["X-Request-ID"] == "req-42"
    assert response.json()["error"]["request_id"] == "req-42"
    generated = await api.get("/health/live")
    assert len(generated.headers["X-Request-ID"]) == 32


async def test_405_lists_every_method_of_the_path(api: httpx.AsyncClient) -> None:
    """A wrong method is 405 with an Allow header naming all methods the path serves."""
    vectors = await api.request("PATCH", "/v1/vectors/docs/a")
    assert_error(vectors, 405, "http_405")
    assert vectors.headers["Allow"] == "DELETE, GET, PUT"
    locks = await api.request("PATCH", "/v1/locks/job")
    assert locks.headers["Allow"] == "DELETE, POST"
    extend = await api.request("PATCH", "/v1/locks/job:extend")
    assert extend.headers["Allow"] == "POST"


class ExplodingIndex(FakeVectorIndex):
    async def get(self, namespace: str, ids: Any) -> Any:
        raise RuntimeError("secret internals /etc/passwd")

    async def delete(self, namespace: str, vector_id: str) -> bool:
        raise BackendNotConfiguredError("vectors are off; set FAISS__INDEX_PATH")


async def test_unexpected_error_is_500_without_internals(app_settings: Settings) -> None:
    """An unexpected error is a 500 without internals, logged with the request id; typed map."""
    container = create_container(app_settings)
    container.vectors.override(providers.Object(ExplodingIndex(4)))
    async with serve_app(container) as api:
        with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
            response = await api.get("/v1/vectors/docs/a", headers={"X-Request-ID": "req-500"})
        error = assert_error(response, 500, "internal_error")
        assert "secret" not in error["message"]
        assert_error(await api.delete("/v1/vectors/docs/a"), 503, "backend_not_configured")
    logged = [entry for entry in logs if entry["event"] == "api.unexpected_error"]
    assert [entry["request_id"] for entry in logged] == ["req-500"]


async def test_publish_after_the_bus_closed_is_503(overridden_container: Any, fakes: Fakes) -> None:
    """A bus already closed (shutdown under way) is a 503, not an internal error."""
    async with serve_app(overridden_container) as api:
        await fakes.bus.close(1.0)
        response = await api.post(
            "/v1/events", json={"type": "user.created", "resource": "user", "key": "u1"}
        )
    assert_error(response, 503, "bus_closed")


async def test_event_stream_refuses_a_bad_pattern_before_streaming(api: httpx.AsyncClient) -> None:
    """A malformed pattern is a 422 in the error shape, not a 200 stream that then breaks."""
    for pattern in ("a..b", "a.b#", "a.#x"):
        response = await api.get("/v1/events/stream", params={"pattern": pattern})
        error = assert_error(response, 422, "invalid_input")
        assert "pattern" in error["message"]


async def test_event_stream_on_a_closed_bus_is_503(overridden_container: Any, fakes: Fakes) -> None:
    """A stream asked of a bus that has closed is a 503 in the error shape, not a broken 200."""
    async with serve_app(overridden_container) as api:
        await fakes.bus.close(1.0)
        response = await api.get("/v1/events/stream", params={"pattern": "#"})
    assert_error(response, 503, "bus_closed")


def test_auth_enabled_without_tokens_refuses_to_start(tmp_path: Path) -> None:
    """API__AUTH=enabled without tokens: create_app raises a ConfigurationError naming the fix."""
    settings = load_settings(data_dir=tmp_path)
    with pytest.raises(ConfigurationError, match="API__TOKENS"):
        create_app(create_container(settings))


async def test_auth_disabled_is_explicit_and_logged(tmp_path: Path) -> None:
    """API__AUTH=disabled serves without a token and logs a warning at start."""
    settings = load_settings(
        data_dir=tmp_path / "data",
        faiss={"index_path": tmp_path / "faiss", "dimension": 4},
        api={"auth": "disabled"},
    )
    with capture_logs() as logs:
        async with serve_app(create_container(settings)) as api:
            response = await api.get("/v1/sessions/x", headers={"Authorization": ""})
    assert response.status_code == 404
    assert any(entry["event"] == "api.auth_disabled" for entry in logs)


async def test_overridden_backends_are_used_and_the_real_ones_never_start(
    overridden_container: Any, fakes: Fakes, app_settings: Settings
) -> None:
    """With state, bus and vectors overridden, requests reach the fakes; no real one starts."""
    async with serve_app(overridden_container) as api:
        await api.put("/v1/vectors/docs/a", json={"vector": [1, 0, 0, 0]})
        await api.put("/v1/sessions/s", json={"data": {"x": 1}})
        received: list[str] = []

        async def collect(event: Any) -> None:
            received.append(event.type)

        await fakes.bus.subscribe("#", collect)
        await api.post("/v1/events", json={"type": "a.b", "resource": "r", "key": "k"})
        await fakes.bus.drain(2.0)
    assert "upsert" in fakes.vectors.calls
    assert await fakes.state.get_session("s") == {"x": 1}
    assert received == ["a.b"]
    assert not app_settings.faiss.index_path.exists(), "the real VectorIndex was started"
    assert overridden_container.state_layer.memory.initialized is False
    assert overridden_container.event_layer.inprocess.initialized is False


@pytest.mark.parametrize("freeze_gc", [False, True])
async def test_freeze_gc_moves_startup_objects_out_of_the_collector_only_when_asked(
    overridden_container: Any, freeze_gc: bool
) -> None:
    """``python -m app serve`` passes ``freeze_gc=True`` (freeze, fewer young collections);
    apps built in tests leave GC alone."""
    import gc

    from app.web.app import YOUNG_GENERATION_THRESHOLD

    gc.unfreeze()
    before = gc.get_threshold()
    app = create_app(overridden_container, freeze_gc=freeze_gc)
    try:
        async with app.router.lifespan_context(app):
            frozen = gc.get_freeze_count()
            threshold = gc.get_threshold()
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
    assert (frozen > 0) is freeze_gc
    tuned = (YOUNG_GENERATION_THRESHOLD, *before[1:])
    assert threshold == (tuned if freeze_gc else before)


async def test_a_failed_shutdown_is_kept_for_whoever_runs_the_app(
    app_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server only logs a failed lifespan shutdown; the app keeps the error to raise."""
    app = create_app(create_container(app_settings))
    failure = ResourceStopError("1 resource(s) failed to stop", [OSError("disk gone")])
    real_stop = Lifecycle.stop

    async def stop_then_fail(self: Lifecycle) -> None:
        await real_stop(self)
        raise failure

    monkeypatch.setattr(Lifecycle, "stop", stop_then_fail)
    with pytest.raises(ResourceStopError):
        async with app.router.lifespan_context(app):
            assert app.state.stop_error is None
    assert app.state.stop_error is failure
