"""The application container in each mode: which backends start, and every provider resolves."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aio_pika
import asyncpg
import pytest
import redis.asyncio as aioredis
from elasticsearch import AsyncElasticsearch

from app.database import PostgreSQLClient
from app.errors import ResourceStartError
from app.events import InProcessEventBus, RabbitMQEventBus
from app.state import InMemoryStateBackend, RedisStateBackend
from app.vectors import VectorIndex
from containers import build_lifecycle, check_readiness, create_container
from settings import load_settings
from tests.conftest import is_started
from tests.fakes.silent_server import silent_server

pytestmark = pytest.mark.integration


async def resolve(provider: Any) -> Any:
    value = provider()
    return await value if inspect.isawaitable(value) else value


class ConnectionCounter:
    """A loopback TCP listener that counts connection attempts (and answers nothing)."""

    def __init__(self) -> None:
        self.accepted = 0
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> int:
        async def on_connect(_r: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.accepted += 1
            writer.close()

        self.server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


@pytest.fixture
async def redis_trap() -> AsyncIterator[ConnectionCounter]:
    counter = ConnectionCounter()
    async with counter as port:
        counter.port = port  # type: ignore[attr-defined]
        yield counter


async def test_single_node_uses_memory_and_never_connects_to_redis(
    tmp_path: Path, redis_trap: ConnectionCounter
) -> None:
    """single_node gets the in-memory state and in-process bus; Redis is never connected."""
    port = redis_trap.port  # type: ignore[attr-defined]
    settings = load_settings(
        data_dir=tmp_path,
        redis={"url": f"redis://127.0.0.1:{port}/0"},
        faiss={"index_path": tmp_path / "faiss", "dimension": 4},
    )
    container = create_container(settings)
    async with build_lifecycle(container) as lifecycle:
        assert isinstance(await resolve(container.state_backend), InMemoryStateBackend)
        assert isinstance(await resolve(container.event_bus), InProcessEventBus)
        assert isinstance(await resolve(container.vectors), VectorIndex)
        pool = await resolve(container.postgres)
        assert isinstance(pool, asyncpg.Pool)
        assert await pool.fetchval("SELECT 1") == 1
        readiness = await check_readiness(lifecycle)
        assert {name: r.status for name, r in readiness.items()} == {
            "postgres": "ok",
            "database": "ok",
            "state": "ok",
            "events": "ok",
            "vectors": "ok",
            "sessions": "ok",
            "conversations": "ok",
            "entities": "ok",
            "redis": "disabled",
            "elasticsearch": "disabled",
            "rabbitmq": "disabled",
        }
        assert not is_started(container.redis)
        assert not is_started(container.rabbitmq)
    assert redis_trap.accepted == 0


async def test_distributed_resolves_every_provider(
    tmp_path: Path,
    redis_url: str,
    postgres_dsn: str,
    rabbitmq_url: str,
    elasticsearch_url: str,
    unique_name: str,
    rabbitmq_exchange: str,
) -> None:
    """distributed + rabbitmq + Elasticsearch starts all backends and every provider resolves."""
    settings = load_settings(
        deployment_mode="distributed",
        vectors={"backend": "faiss"},  # the loopback Postgres 15 has no pgvector
        event_bus="rabbitmq",
        data_dir=tmp_path,
        redis={"url": redis_url},
        postgres={"dsn": postgres_dsn},
        rabbitmq={"url": rabbitmq_url, "exchange": rabbitmq_exchange},
        elasticsearch={"hosts": [elasticsearch_url]},
        state={"namespace": unique_name},
        faiss={"index_path": tmp_path / "faiss", "dimension": 4},
    )
    container = create_container(settings)
    async with build_lifecycle(container) as lifecycle:
        assert isinstance(await resolve(container.redis), aioredis.Redis)
        assert isinstance(await resolve(container.postgres), asyncpg.Pool)
        database = await resolve(container.database)
        assert isinstance(database, PostgreSQLClient)
        assert database.pool is await resolve(container.postgres)  # the same pool, not a second
        assert isinstance(await resolve(container.elasticsearch), AsyncElasticsearch)
        assert isinstance(await resolve(container.rabbitmq), aio_pika.abc.AbstractRobustConnection)
        assert isinstance(await resolve(container.state_backend), RedisStateBackend)
        assert isinstance(await resolve(container.event_bus), RabbitMQEventBus)
        assert isinstance(await resolve(container.vectors), VectorIndex)
        assert await resolve(container.settings) is settings
        readiness = await check_readiness(lifecycle)
        assert all(r.ok for r in readiness.values()), readiness
        assert set(readiness) == {
            "redis",
            "postgres",
            "database",
            "elasticsearch",
            "rabbitmq",
            "state",
            "events",
            "vectors",
            "sessions",
            "conversations",
            "entities",
        }
    assert lifecycle.started == ()


async def test_unreachable_backend_fails_start_and_closes_the_rest(
    tmp_path: Path, postgres_dsn: str, redis_url: str
) -> None:
    """A RabbitMQ that never answers fails the start with its masked address, after Postgres
    and Redis came up: both are closed again."""
    async with silent_server() as (port, _accepted):
        settings = load_settings(
            deployment_mode="distributed",
            vectors={"backend": "faiss"},  # the loopback Postgres 15 has no pgvector
            event_bus="rabbitmq",
            data_dir=tmp_path,
            redis={"url": redis_url},
            postgres={"dsn": postgres_dsn, "min_connections": 1, "max_connections": 2},
            rabbitmq={"url": f"amqp://guest:s3cret@127.0.0.1:{port}/", "connect_timeout_s": 1},
            faiss={"index_path": tmp_path / "faiss", "dimension": 4},
            state={"namespace": "unreachable-test"},
        )
        container = create_container(settings)
        lifecycle = build_lifecycle(container)
        seen_running: set[str] = set()

        async def watch() -> None:
            while True:
                seen_running.update(lifecycle.started)
                await asyncio.sleep(0.01)

        watcher = asyncio.create_task(watch())
        with pytest.raises(ResourceStartError) as caught:
            await lifecycle.start()
        watcher.cancel()
    message = str(caught.value)
    assert message.startswith(f"rabbitmq failed to start (amqp://guest:***@127.0.0.1:{port}/)")
    assert "s3cret" not in message
    assert {"postgres", "redis"} <= seen_running, "the rollback had nothing to roll back"
    assert lifecycle.started == ()
    assert not is_started(container.postgres)
    assert not is_started(container.redis)
