"""JSONRoute: bodies parsed by pydantic-core, with the stdlib's results and errors."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI

from app.web.json_route import JSONRoute


def echo_router() -> APIRouter:
    router = APIRouter(route_class=JSONRoute)

    @router.post("/echo")
    async def echo(body: dict[str, Any]) -> dict[str, Any]:
        return {"got": body}

    @router.post("/code-points")
    async def code_points(body: dict[str, str]) -> list[int]:
        return [ord(character) for character in body["text"]]

    @router.get("/plain")
    async def plain() -> dict[str, str]:
        return {"ok": "yes"}

    return router


def echo_app() -> FastAPI:
    app = FastAPI()
    app.include_router(echo_router())
    return app


@pytest.fixture
async def client() -> Any:
    transport = httpx.ASGITransport(app=echo_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


def post(client: httpx.AsyncClient, raw: bytes) -> Any:
    return client.post("/echo", content=raw, headers={"Content-Type": "application/json"})


@pytest.mark.parametrize(
    "raw",
    [
        b'{"vector": [0.1, -2.5e-3, 1e300], "k": 10, "s": "caf\\u00e9", "n": null}',
        b'{"big": 123456789012345678901234567890, "nested": {"a": [true, false]}}',
        b'{"a": 1, "a": 2}',  # the last duplicate wins in both parsers
    ],
)
async def test_body_parses_as_the_stdlib_would(client: httpx.AsyncClient, raw: bytes) -> None:
    """Valid bodies parse to exactly what json.loads gives (big ints, duplicate keys, escapes)."""
    response = await post(client, raw)
    assert response.status_code == 200
    assert response.json() == {"got": json.loads(raw)}


@pytest.mark.parametrize(
    ("raw", "position"),
    [
        (b'{"text": "a\\ud800"}', 11),  # a high surrogate alone
        (b'{"text": "\\ud83d\\ude00 and \\udc00"}', 27),  # a pair, then a low one alone
    ],
)
async def test_lone_surrogate_escape_is_json_invalid(
    client: httpx.AsyncClient, raw: bytes, position: int
) -> None:
    """Not Unicode text: the stdlib would accept it, and it could never be sent back as JSON."""
    headers = {"Content-Type": "application/json"}
    response = await client.post("/code-points", content=raw, headers=headers)
    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert error["type"] == "json_invalid"
    assert error["loc"] == ["body", position]
    assert "surrogate" in error["ctx"]["error"]


async def test_surrogate_pair_escape_is_one_character(client: httpx.AsyncClient) -> None:
    """A correctly paired surrogate escape is one character, as in the stdlib."""
    headers = {"Content-Type": "application/json"}
    raw = b'{"text": "\\ud83d\\ude00"}'
    response = await client.post("/code-points", content=raw, headers=headers)
    assert response.status_code == 200
    assert response.json() == [0x1F600]


async def test_malformed_json_gets_fastapis_json_invalid_error(client: httpx.AsyncClient) -> None:
    """Malformed JSON gets FastAPI's json_invalid error at the stdlib's position."""
    response = await post(client, b'{"vector": [1, 2')
    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert error["type"] == "json_invalid"
    assert error["loc"] == ["body", 16]


def test_only_routes_with_a_body_are_wrapped() -> None:
    """Routes without a body are left as FastAPI made them (no wrapper on the way)."""
    wrapper = "JSONRoute.get_route_handler.<locals>.handle"
    handlers = {
        route.path: route.get_route_handler().__qualname__
        for route in echo_router().routes
        if isinstance(route, JSONRoute)
    }
    assert handlers["/echo"] == wrapper
    assert handlers["/plain"] != wrapper
