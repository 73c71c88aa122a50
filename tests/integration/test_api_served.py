"""The API through a real uvicorn on loopback: event streams, and distributed mode."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from app.web import create_app
from containers import create_container
from containers.accessors import get_event_bus
from settings import Settings, load_settings
from tests.conftest import API_TOKEN

pytestmark = pytest.mark.integration

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@asynccontextmanager
async def served(app: FastAPI) -> AsyncIterator[tuple[str, uvicorn.Server]]:
    """Serve ``app`` with uvicorn on a free loopback port until the block ends."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done(), "uvicorn stopped before it started"
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}", server
    finally:
        app.state.streams_stop.set()
        server.should_exit = True
        await asyncio.wait_for(task, 30)


async def read_event(lines: AsyncIterator[str]) -> dict[str, str]:
    """The next server-sent event's fields (comments skipped)."""
    fields: dict[str, str] = {}
    async for line in lines:
        if line.startswith(":"):
            continue
        if not line:
            if fields:
                return fields
            continue
        name, _, value = line.partition(": ")
        fields[name] = value
    raise AssertionError("stream ended before an event arrived")


async def test_event_stream_delivers_and_ends_on_disconnect(app_settings: Settings) -> None:
    """A stream gets matching events only, and its subscription goes away on disconnect."""
    app = create_app(create_container(app_settings))
    async with (
        served(app) as (base, _server),
        httpx.AsyncClient(base_url=base, headers=AUTH) as client,
    ):
        params = {"pattern": "user.*"}
        async with client.stream("GET", "/v1/events/stream", params=params) as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            lines = stream.aiter_lines()
            assert await anext(lines) == ": subscribed"
            for event_type in ("order.created", "user.created"):
                event_in = {"type": event_type, "resource": "r", "key": "k1"}
                assert (await client.post("/v1/events", json=event_in)).status_code == 202
            event = await asyncio.wait_for(read_event(lines), 10)
            assert event["event"] == "user.created"
            assert json.loads(event["data"])["key"] == "k1"
        bus = await get_event_bus(app.state.container)
        left = {"type": "user.left", "resource": "r", "key": "k"}
        for _ in range(100):  # the server notices the disconnect asynchronously
            before = bus.stats.unrouted
            await client.post("/v1/events", json=left)
            if bus.stats.unrouted == before + 1:
                break
            await asyncio.sleep(0.05)
        assert bus.stats.unrouted == before + 1, "the stream's subscription outlived the client"


async def test_event_stream_ends_cleanly_on_shutdown(app_settings: Settings) -> None:
    """Shutting the server down ends an open stream instead of hanging the shutdown."""
    app = create_app(create_container(app_settings))
    async with (
        served(app) as (base, server),
        httpx.AsyncClient(base_url=base, headers=AUTH) as client,
        client.stream("GET", "/v1/events/stream") as stream,
    ):
        lines = stream.aiter_lines()
        assert await anext(lines) == ": subscribed"
        app.state.streams_stop.set()
        server.should_exit = True
        rest = [line async for line in lines]
        assert all(line == "" or line.startswith(":") for line in rest)


def distributed_settings(
    tmp_path: Path, redis_url: str, postgres_dsn: str, rabbitmq_url: str, name: str, **api: object
) -> Settings:
    return load_settings(
        deployment_mode="distributed",
        vectors={"backend": "faiss"},  # the loopback Postgres 15 has no pgvector
        event_bus="rabbitmq",
        data_dir=tmp_path / "data",
        redis={"url": redis_url},
        postgres={"dsn": postgres_dsn},
        rabbitmq={"url": rabbitmq_url, "exchange": name},
        state={"namespace": name},
        faiss={"index_path": tmp_path / "faiss", "dimension": 4},
        api={"tokens": [API_TOKEN], **api},
        log={"level": "WARNING"},
    )


async def test_distributed_api_and_a_rate_limit_shared_by_two_instances(
    tmp_path: Path,
    redis_url: str,
    postgres_dsn: str,
    rabbitmq_url: str,
    rabbitmq_exchange: str,
) -> None:
    """Two app instances on one Redis share sessions, locks and one rate limit per caller."""
    settings = distributed_settings(
        tmp_path, redis_url, postgres_dsn, rabbitmq_url, rabbitmq_exchange, rate_limit=4
    )
    first = create_app(create_container(settings))
    second_settings = settings.model_copy(
        update={"faiss": settings.faiss.model_copy(update={"index_path": tmp_path / "faiss2"})}
    )
    second = create_app(create_container(second_settings))
    async with (
        served(first) as (base_a, _a),
        served(second) as (base_b, _b),
        httpx.AsyncClient(base_url=base_a, headers=AUTH) as a,
        httpx.AsyncClient(base_url=base_b, headers=AUTH) as b,
    ):
        assert (await a.put("/v1/sessions/s1", json={"data": {"n": 1}})).status_code == 200
        assert (await b.get("/v1/sessions/s1")).json()["data"] == {"n": 1}
        assert (await b.post("/v1/locks/k", json={"ttl_seconds": 10})).status_code == 200
        assert (
            await a.post("/v1/events", json={"type": "a.b", "resource": "r", "key": "k"})
        ).status_code == 202
        limited = await a.get("/v1/sessions/s1")
        assert limited.status_code == 429
        assert limited.headers["X-RateLimit-Remaining"] == "0"
        assert (await b.get("/v1/sessions/s1")).status_code == 429
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(redis_url)
    async with client:
        keys = [key async for key in client.scan_iter(match=f"{rabbitmq_exchange}*")]
        if keys:
            await client.delete(*keys)
