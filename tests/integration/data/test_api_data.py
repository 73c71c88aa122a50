"""The /api session and conversation routes: auth, rate-limit headers, errors, OpenAPI."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
from dependency_injector import providers

from containers import create_container
from settings import Settings, load_settings
from tests.conftest import API_TOKEN, serve_app

pytestmark = pytest.mark.integration


@pytest.fixture
async def client(
    app_settings: Settings, pg_pool: asyncpg.Pool, unique_name: str
) -> AsyncIterator[httpx.AsyncClient]:
    """The app on the shared test Postgres (its own table) and in-memory sessions."""
    settings = load_settings(
        **{
            **app_settings.model_dump(include={"data_dir", "faiss", "api", "log"}),
            "conversations": {"table": unique_name},
            "sessions": {"max_sessions": 3, "policy": "reject"},
        }
    )
    container = create_container(settings)
    container.postgres.override(providers.Object(pg_pool))
    try:
        async with serve_app(container) as http:
            yield http
    finally:
        container.unwire()
        await pg_pool.execute(f'DROP TABLE IF EXISTS "{unique_name}"')


async def test_session_routes_create_read_list_delete(client: httpx.AsyncClient) -> None:
    """POST/GET/DELETE /api/sessions work end to end and a deleted session is a 404."""
    created = await client.post("/api/sessions", json={"user_id": "ada", "metadata": {"a": 1}})
    assert created.status_code == 201
    session = created.json()
    assert session["metadata"] == {"a": 1}
    sid = session["session_id"]
    got = await client.get(f"/api/sessions/{sid}")
    assert got.status_code == 200
    assert got.json()["last_activity"] >= session["last_activity"]
    listed = await client.get("/api/sessions", params={"user_id": "ada"})
    assert [s["session_id"] for s in listed.json()] == [sid]
    assert (await client.delete(f"/api/sessions/{sid}")).status_code == 204
    missing = await client.get(f"/api/sessions/{sid}")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"


async def test_session_cap_with_reject_is_a_409(client: httpx.AsyncClient) -> None:
    """At SESSIONS__MAX_SESSIONS with policy reject, a create is 409 session_limit."""
    for _ in range(3):
        assert (await client.post("/api/sessions", json={"user_id": "u"})).status_code == 201
    refused = await client.post("/api/sessions", json={"user_id": "u"})
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "session_limit"


async def test_api_routes_need_the_token_and_carry_rate_limit_headers(
    client: httpx.AsyncClient,
) -> None:
    """/api is guarded like /v1: 401 without a token, rate-limit headers with one."""
    anonymous = await client.get(
        "/api/conversations/c/messages", headers={"Authorization": "Bearer wrong"}
    )
    assert anonymous.status_code == 401
    allowed = await client.get("/api/conversations/c/messages")
    assert allowed.status_code == 200
    assert "X-RateLimit-Remaining" in allowed.headers


async def test_conversation_routes_save_read_search_and_export(
    client: httpx.AsyncClient,
) -> None:
    """Messages posted come back in history, in search, and in the CSV download."""
    for text in ("where is my refund", "thanks for the refund"):
        posted = await client.post(
            "/api/conversations/c-1/messages",
            json={
                "user_input": text,
                "agent_response": "on its way",
                "response_time_ms": 12.5,
                "timestamp": "2026-01-01T10:00:00+00:00",
                "metadata": {"channel": "web"},
            },
        )
        assert posted.status_code == 201
    history = (await client.get("/api/conversations/c-1/messages", params={"limit": 10})).json()
    assert [m["user_input"] for m in history] == ["where is my refund", "thanks for the refund"]
    found = await client.get("/api/conversations:search", params={"q": "thanks -where"})
    assert [m["user_input"] for m in found.json()] == ["thanks for the refund"]
    exported = await client.get("/api/conversations/c-1/export", params={"format": "csv"})
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert [r["user_input"] for r in rows] == ["where is my refund", "thanks for the refund"]


async def test_bad_input_is_a_422_in_the_error_shape(client: httpx.AsyncClient) -> None:
    """An absurd conversation id, a query too long or a naive timestamp is a 422."""
    long_id = "x" * 300
    assert (await client.get(f"/api/conversations/{long_id}/messages")).status_code == 422
    too_long = await client.get("/api/conversations:search", params={"q": "q" * 2000})
    assert too_long.status_code == 422
    assert too_long.json()["error"]["code"] == "invalid_request"
    body = {"user_input": "a", "agent_response": "b", "response_time_ms": -1}
    assert (await client.post("/api/conversations/c/messages", json=body)).status_code == 422


async def test_openapi_declares_bearer_auth_on_api_routes(client: httpx.AsyncClient) -> None:
    """The OpenAPI document marks every /api operation as needing the bearer token."""
    schema = (await client.get("/openapi.json")).json()
    api_ops = [
        op
        for path, ops in schema["paths"].items()
        if path.startswith("/api")
        for op in ops.values()
    ]
    assert len(api_ops) >= 7
    assert all(op.get("security") == [{"bearerAuth": []}] for op in api_ops)
    assert API_TOKEN
