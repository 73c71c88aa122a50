"""``DataLayer``: the original design's usage, in both modes, and its failure behaviour."""

from __future__ import annotations

import asyncio
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import pytest

from app import (
    BackendNotConfiguredError,
    DataEvent,
    DataLayer,
    DataLayerConfig,
    ElasticsearchConfig,
    FaissConfig,
    NotStartedError,
    PostgresConfig,
    RedisConfig,
    ResourceStartError,
)
from tests.fakes.silent_server import silent_server
from tests.fakes.tcp_proxy import TcpProxy

pytestmark = pytest.mark.integration

DIM = 8


def vector(seed: int) -> list[float]:
    return [float((seed * (i + 3)) % 7 + 1) for i in range(DIM)]


async def original_snippet(data: DataLayer, key: str, index: str, with_redis_es: bool) -> None:
    """The original design's usage, line for line (minus Redis/Elasticsearch in single_node)."""
    received: list[DataEvent] = []

    async def handler(event: DataEvent) -> None:
        received.append(event)

    ok = (await data.health()).ok
    assert ok
    if with_redis_es:
        await data.redis.set(key, b"value")
        assert await data.redis.get(key) == b"value"
        await data.redis.delete(key)
    n = await data.postgres.fetchval("SELECT 1 + 1")
    assert n == 2
    if with_redis_es:
        await data.elasticsearch.index(index=index, id="1", document={"title": "t"}, refresh=True)
        assert (await data.elasticsearch.get(index=index, id="1"))["_source"] == {"title": "t"}
        await data.elasticsearch.indices.delete(index=index)
    await data.vectors.upsert(
        namespace="embeddings", vector_id="doc-1", vector=vector(1), metadata={"title": "one"}
    )
    hits = await data.vectors.query(namespace="embeddings", vector=vector(1), top_k=5)
    assert hits[0].id == "doc-1"
    assert hits[0].metadata == {"title": "one"}
    subscription = data.events.subscribe("user.created", handler)
    await subscription
    await data.events.publish(
        DataEvent(
            type="user.created",
            resource="users",
            key="user-123",
            payload={"name": "Ada"},
            source="postgres",
        )
    )
    await data.events.drain(10.0)
    assert [(e.type, e.key, e.payload) for e in received] == [
        ("user.created", "user-123", {"name": "Ada"})
    ]


async def test_original_usage_distributed(
    tmp_path: Path,
    redis_url: str,
    postgres_dsn: str,
    rabbitmq_url: str,
    elasticsearch_url: str,
    unique_name: str,
    rabbitmq_exchange: str,
) -> None:
    """The original snippet works against real Redis, Postgres, RabbitMQ (and Elasticsearch)."""
    config = DataLayerConfig(
        deployment_mode="distributed",
        vectors={"backend": "faiss"},  # the loopback Postgres 15 has no pgvector
        event_bus="rabbitmq",
        redis=RedisConfig(url=redis_url),
        postgres=PostgresConfig(dsn=postgres_dsn),
        elasticsearch=ElasticsearchConfig(hosts=[elasticsearch_url]),
        faiss=FaissConfig(index_path=tmp_path / "faiss", dimension=DIM),
        rabbitmq={"url": rabbitmq_url, "exchange": rabbitmq_exchange},
        state={"namespace": unique_name},
    )
    async with DataLayer(config) as data:
        await original_snippet(data, f"{unique_name}:key", unique_name, with_redis_es=True)
        health = await data.health()
        assert dict(health.details) == {
            "redis": "ok",
            "postgres": "ok",
            "database": "ok",
            "elasticsearch": "ok",
            "vectors": "ok",
            "faiss": "ok",
            "sessions": "ok",
            "conversations": "ok",
            "rabbitmq": "ok",
            "state": "ok",
            "events": "ok",
            "entities": "ok",
        }
        assert set(health.latency_ms) == set(health.details)


async def test_original_usage_single_node(tmp_path: Path) -> None:
    """The same snippet minus Redis/Elasticsearch on the embedded Postgres, nothing installed."""
    config = DataLayerConfig(
        data_dir=tmp_path / "data",
        faiss=FaissConfig(index_path=tmp_path / "faiss", dimension=DIM),
    )
    async with DataLayer(config) as data:
        await original_snippet(data, "unused", "unused", with_redis_es=False)
        health = await data.health()
        assert health.details["redis"] == "disabled"
        assert health.details["elasticsearch"] == "disabled"
        assert health.details["rabbitmq"] == "disabled"
        with pytest.raises(BackendNotConfiguredError, match="set DEPLOYMENT_MODE=distributed"):
            _ = data.redis
        with pytest.raises(BackendNotConfiguredError, match="ELASTICSEARCH__HOSTS"):
            _ = data.elasticsearch


def test_use_before_start_says_how_to_start(tmp_path: Path) -> None:
    """Any client before start() raises NotStartedError saying to call start() or use async with."""
    data = DataLayer(DataLayerConfig(data_dir=tmp_path))
    for name in ("redis", "postgres", "elasticsearch", "vectors", "events", "state"):
        with pytest.raises(NotStartedError, match=r"call start\(\) or use async with"):
            getattr(data, name)


async def _our_connections(postgres_dsn: str, application_name: str) -> int:
    connection = await asyncpg.connect(postgres_dsn)
    try:
        count: int = await connection.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", application_name
        )
        return count
    finally:
        await connection.close()


async def test_unreachable_backend_fails_once_and_closes_the_rest(
    tmp_path: Path, postgres_dsn: str, redis_url: str, unique_name: str
) -> None:
    """RabbitMQ never answers: one clear error, and the Postgres connections of ours that were
    open by then are closed again."""
    postgres_was_up = asyncio.Event()

    async def watch_postgres() -> None:
        for _ in range(500):  # polls pg_stat_activity for ~10 s at most
            if await _our_connections(postgres_dsn, unique_name):
                postgres_was_up.set()
                return
            await asyncio.sleep(0.02)

    async with silent_server() as (port, _accepted):
        config = DataLayerConfig(
            deployment_mode="distributed",
            vectors={"backend": "faiss"},  # the loopback Postgres 15 has no pgvector
            event_bus="rabbitmq",
            redis=RedisConfig(url=redis_url),
            postgres=PostgresConfig(
                dsn=postgres_dsn, application_name=unique_name, min_connections=2
            ),
            faiss=FaissConfig(index_path=tmp_path / "faiss", dimension=DIM),
            rabbitmq={"url": f"amqp://guest:guest@127.0.0.1:{port}/", "connect_timeout_s": 1},
            state={"namespace": unique_name},
        )
        data = DataLayer(config)
        watcher = asyncio.create_task(watch_postgres())
        with pytest.raises(
            ResourceStartError, match=r"^rabbitmq failed to start \(amqp://guest:\*\*\*@"
        ):
            await data.start()
        watcher.cancel()
    assert postgres_was_up.is_set(), "Postgres never came up: no rollback was tested"
    assert await _our_connections(postgres_dsn, unique_name) == 0
    with pytest.raises(NotStartedError):
        _ = data.postgres


async def test_health_reports_a_stopped_backend_within_its_timeout(
    tmp_path: Path, redis_url: str, postgres_dsn: str, unique_name: str
) -> None:
    """A backend that goes away mid-run shows as error within the timeout; the rest stay ok."""
    config = DataLayerConfig(
        deployment_mode="distributed",
        vectors={"backend": "faiss"},  # the loopback Postgres 15 has no pgvector
        redis=RedisConfig(url=redis_url),
        postgres=PostgresConfig(dsn=postgres_dsn),
        faiss=FaissConfig(index_path=tmp_path / "faiss", dimension=DIM),
        state={"namespace": unique_name},
    )
    async with DataLayer(config) as data:
        await data.postgres.close()  # the pool is gone, as if the server had stopped
        started = asyncio.get_running_loop().time()
        health = await data.health(timeout_s=1.0)
        elapsed = asyncio.get_running_loop().time() - started
        assert health.ok is False
        assert health.details["postgres"].startswith("error: ")
        # The database client, the conversations and the entities live on that pool too.
        down = {"postgres", "database", "conversations", "entities"}
        assert all(health.details[name].startswith("error: ") for name in down)
        assert {k: v for k, v in health.details.items() if k not in down} == {
            "redis": "ok",
            "elasticsearch": "disabled",
            "vectors": "ok",
            "faiss": "ok",
            "sessions": "ok",
            "rabbitmq": "disabled",
            "state": "ok",
            "events": "ok",
        }
        assert elapsed < 2.0


async def test_health_reports_a_hung_backend_within_its_timeout(
    tmp_path: Path, redis_url: str, postgres_dsn: str, unique_name: str
) -> None:
    """A Redis that stops answering mid-run is an error after the timeout, not a stall."""
    upstream = urlsplit(redis_url)
    proxy = TcpProxy(upstream.hostname or "127.0.0.1", upstream.port or 6379)
    await proxy.start()
    config = DataLayerConfig(
        deployment_mode="distributed",
        vectors={"backend": "faiss"},  # the loopback Postgres 15 has no pgvector
        redis=RedisConfig(url=f"redis://127.0.0.1:{proxy.port}{upstream.path}"),
        postgres=PostgresConfig(dsn=postgres_dsn),
        faiss=FaissConfig(index_path=tmp_path / "faiss", dimension=DIM),
        state={"namespace": unique_name},
    )
    try:
        async with DataLayer(config) as data:
            assert (await data.health()).ok
            proxy.freeze()
            loop = asyncio.get_running_loop()
            started = loop.time()
            health = await data.health(timeout_s=0.5)
            elapsed = loop.time() - started
            assert elapsed < 1.5
            assert health.details["redis"] == "error: no answer within 0.5 s"
            assert health.details["state"] == "error: no answer within 0.5 s"
            assert health.details["postgres"] == "ok"
            assert health.details["faiss"] == "ok"
            assert health.latency_ms["redis"] >= 500
            proxy.thaw()
    finally:
        await proxy.aclose()


async def test_stop_during_start_waits_and_leaves_nothing_running(tmp_path: Path) -> None:
    """stop() called while start() is still starting (the embedded Postgres) stops it after."""
    config = DataLayerConfig(
        data_dir=tmp_path / "data",
        faiss=FaissConfig(index_path=tmp_path / "faiss", dimension=DIM),
    )
    data = DataLayer(config)
    starting = asyncio.create_task(data.start())
    await asyncio.sleep(0.05)
    assert not starting.done()
    await data.stop()
    await starting
    with pytest.raises(NotStartedError):
        _ = data.postgres
    assert not (tmp_path / "data" / "postgres" / "postmaster.pid").exists()
