"""The native-client resources against real servers (and the Elasticsearch fake or server)."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from app.backends import (
    elasticsearch_client,
    ping_elasticsearch,
    ping_postgres,
    ping_rabbitmq,
    ping_redis,
    postgres_pool,
    rabbitmq_connection,
    redis_client,
)
from app.errors import RabbitMQUnavailableError
from settings import load_settings
from tests.fakes.silent_server import silent_server
from tests.fakes.tcp_proxy import TcpProxy

pytestmark = pytest.mark.integration


@asynccontextmanager
async def run(resource: Any) -> Any:
    """Drive a resource generator the way the provider does: start, yield, stop."""
    value = await anext(resource)
    try:
        yield value
    finally:
        with pytest.raises(StopAsyncIteration):
            await anext(resource)


async def test_redis_resource_pings_and_closes(redis_url: str, unique_name: str) -> None:
    """The Redis resource gives a working client and closes its pool at stop."""
    settings = load_settings(redis={"url": redis_url})
    async with run(redis_client(settings.redis)) as client:
        await ping_redis(client)
        await client.set(f"{unique_name}:k", b"v", px=5000)
        assert await client.get(f"{unique_name}:k") == b"v"
        await client.delete(f"{unique_name}:k")
        pool = client.connection_pool
        opened = [*pool._available_connections, *pool._in_use_connections]
        assert any(connection.is_connected for connection in opened)
    assert not any(connection.is_connected for connection in opened)


async def test_postgres_resource_on_the_real_server(postgres_dsn: str) -> None:
    """The Postgres resource opens a pool of the configured size on the configured server."""
    settings = load_settings(
        postgres={"dsn": postgres_dsn, "min_connections": 1, "max_connections": 3}
    )
    assert not settings.embedded_postgres
    async with run(postgres_pool(settings)) as pool:
        await ping_postgres(pool)
        assert await pool.fetchval("SELECT 1 + 1") == 2
        assert pool.get_max_size() == 3
    assert pool.is_closing()


async def test_embedded_postgres_starts_and_stops(tmp_path: Path) -> None:
    """single_node with no server configured runs a real embedded Postgres and stops it."""
    settings = load_settings(data_dir=tmp_path, postgres={"database": "emb_test"})
    assert settings.embedded_postgres
    async with run(postgres_pool(settings)) as pool:
        assert await pool.fetchval("SELECT current_database()") == "emb_test"
        pid_file = tmp_path / "postgres" / "postmaster.pid"
        assert pid_file.exists()
    assert not pid_file.exists()


async def test_rabbitmq_resource_connects_and_closes(rabbitmq_url: str) -> None:
    """The RabbitMQ resource opens a robust connection and closes it at stop."""
    settings = load_settings(event_bus="rabbitmq", rabbitmq={"url": rabbitmq_url})
    async with run(rabbitmq_connection(settings.rabbitmq)) as connection:
        await ping_rabbitmq(connection)
    assert connection.is_closed


async def test_elasticsearch_resource(elasticsearch_url: str, unique_name: str) -> None:
    """The Elasticsearch client passes the product check, indexes, gets and closes."""
    settings = load_settings(elasticsearch={"hosts": [elasticsearch_url]})
    async with run(elasticsearch_client(settings.elasticsearch)) as client:
        await ping_elasticsearch(client)
        await client.index(index=unique_name, id="1", document={"a": 1}, refresh=True)
        doc = await client.get(index=unique_name, id="1")
        assert doc["_source"] == {"a": 1}
        await client.indices.delete(index=unique_name)


async def test_rabbitmq_connect_timeout_leaves_nothing_running() -> None:
    """A broker that accepts TCP but never answers: TimeoutError naming the setting, and no
    reconnecting task left behind to connect later."""
    async with silent_server() as (port, accepted):
        settings = load_settings(
            event_bus="rabbitmq",
            rabbitmq={"url": f"amqp://guest:guest@127.0.0.1:{port}/", "connect_timeout_s": 0.2},
        )
        before = asyncio.all_tasks()
        with pytest.raises(TimeoutError, match="RABBITMQ__CONNECT_TIMEOUT_S"):
            await anext(rabbitmq_connection(settings.rabbitmq))
        await asyncio.sleep(0.3)  # a leftover reconnecting task would still be running
        assert asyncio.all_tasks() - before == set()
        assert accepted, "the client never reached the fake broker"


async def test_rabbitmq_ping_fails_while_the_connection_is_down(rabbitmq_url: str) -> None:
    """A robust connection that lost the broker is not ready, although not closed."""
    upstream = urlsplit(rabbitmq_url)
    proxy = TcpProxy(upstream.hostname or "127.0.0.1", upstream.port or 5672)
    await proxy.start()
    credentials = upstream.netloc.rpartition("@")[0]
    proxied = upstream._replace(netloc=f"{credentials}@127.0.0.1:{proxy.port}")
    settings = load_settings(
        event_bus="rabbitmq",
        rabbitmq={"url": urlunsplit(proxied), "reconnect_interval_s": 0.1},
    )
    try:
        async with run(rabbitmq_connection(settings.rabbitmq)) as connection:
            await ping_rabbitmq(connection)
            await proxy.cut()
            for _ in range(100):
                if not connection.connected.is_set():
                    break
                await asyncio.sleep(0.02)
            assert not connection.is_closed
            with pytest.raises(RabbitMQUnavailableError, match="down"):
                await ping_rabbitmq(connection)
            await proxy.restore()
            await asyncio.wait_for(connection.connected.wait(), 10)
            await ping_rabbitmq(connection)
    finally:
        await proxy.aclose()
