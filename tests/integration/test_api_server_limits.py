"""The server ``python -m app serve`` runs, on loopback: header cap, body deadline, shutdown."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from dependency_injector import providers

from app.web import create_app
from app.web.server import GracefulServer, build_server
from containers import Container
from settings import Settings
from tests.conftest import API_TOKEN, Fakes
from tests.integration.test_api import with_api

pytestmark = pytest.mark.integration

KiB = 1024
ANSWER_WITHIN_S = 10.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Served:
    server: GracefulServer
    task: asyncio.Task[None]

    @property
    def port(self) -> int:
        return self.server.config.port


@asynccontextmanager
async def serving(container: Container, **api: Any) -> AsyncIterator[Served]:
    """Serve the app as ``python -m app serve`` does (``build_server``) on a free port."""
    settings: Settings = container.settings()
    container.settings.override(providers.Object(with_api(settings, **api)))
    app = create_app(container)
    server = build_server(app, host="127.0.0.1", port=free_port())
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done(), "uvicorn stopped before it started"
        await asyncio.sleep(0.02)
    try:
        yield Served(server, task)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def error(self) -> dict[str, Any]:
        """The body as our error shape, its request id matching the header."""
        assert self.headers["content-type"] == "application/json", self
        error: dict[str, Any] = json.loads(self.body)["error"]
        assert set(error) == {"code", "message", "request_id", "details"}
        assert error["request_id"] == self.headers["x-request-id"]
        return error


async def read_response(reader: asyncio.StreamReader) -> RawResponse:
    """One HTTP/1.1 response with a Content-Length, read off a raw connection."""
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers["content-length"]))
    return RawResponse(int(status_line.split()[1]), headers, body)


async def send_raw(port: int, request: bytes) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    return reader, writer


async def wait_until(condition: Callable[[], bool], timeout_s: float = ANSWER_WITHIN_S) -> None:
    """Poll ``condition`` until it holds; fail after ``timeout_s``."""
    async with asyncio.timeout(timeout_s):
        while not condition():  # noqa: ASYNC110  # uvicorn's state offers nothing to await
            await asyncio.sleep(0.01)


def request_head(method: str, path: str, *extra: str) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", f"Authorization: Bearer {API_TOKEN}"]
    return ("\r\n".join([*lines, *extra]) + "\r\n\r\n").encode()


async def test_headers_over_the_cap_are_431_and_the_server_keeps_answering(
    overridden_container: Container,
) -> None:
    """A request line plus headers over API__MAX_HEADER_BYTES is a 431 in the error shape,
    naming the setting; headers under the cap and other clients are served as before."""
    async with serving(overridden_container, max_header_bytes=8 * KiB) as served:
        port = served.port
        reader, writer = await send_raw(
            port, request_head("GET", "/health/live", "X-Pad: " + "x" * 64 * KiB)
        )
        refused = await asyncio.wait_for(read_response(reader), ANSWER_WITHIN_S)
        writer.close()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            under = await client.get("/health/live", headers={"X-Pad": "x" * 6 * KiB})
            live = await client.get("/health/live")
    assert refused.status == 431, refused
    error = refused.error()
    assert error["code"] == "headers_too_large"
    assert "API__MAX_HEADER_BYTES=8192" in error["message"]
    assert refused.headers["connection"] == "close"
    assert under.status_code == 200
    assert live.status_code == 200


async def test_a_body_that_never_arrives_is_a_408(
    overridden_container: Container, fakes: Fakes
) -> None:
    """A declared body that does not arrive within API__BODY_READ_TIMEOUT_S is a 408 in the
    error shape and the connection is closed; nothing is stored."""
    async with serving(overridden_container, body_read_timeout_s=0.5) as served:
        reader, writer = await send_raw(
            served.port,
            request_head(
                "PUT", "/v1/vectors/docs/a", "Content-Type: application/json", "Content-Length: 40"
            ),
        )
        response = await asyncio.wait_for(read_response(reader), ANSWER_WITHIN_S)
        rest = await asyncio.wait_for(reader.read(), ANSWER_WITHIN_S)
        writer.close()
    assert response.status == 408, response
    error = response.error()
    assert error["code"] == "body_timeout"
    assert "API__BODY_READ_TIMEOUT_S=0.5" in error["message"]
    assert rest == b"", "the connection stayed open after the 408"
    assert fakes.vectors.data == {}


async def test_shutdown_is_not_held_by_a_body_that_never_arrives(
    overridden_container: Container,
) -> None:
    """At shutdown a request still waiting for its body is answered 503 in the error shape at
    once, and the server stops well before its graceful timeout (10 s) or the body deadline."""
    async with serving(overridden_container, body_read_timeout_s=60) as served:
        reader, writer = await send_raw(
            served.port,
            request_head(
                "PUT", "/v1/vectors/docs/a", "Content-Type: application/json", "Content-Length: 40"
            ),
        )
        await wait_until(lambda: bool(served.server.server_state.tasks))  # reached the app
        served.server.handle_exit(signal.SIGTERM, None)
        response = await asyncio.wait_for(read_response(reader), 5)
        await asyncio.wait_for(served.task, 5)
        writer.close()
    assert response.status == 503, response
    assert response.error()["code"] == "shutting_down"
