"""Shared fixtures: real services on loopback and isolated names for each test."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from dependency_injector import providers
from hypothesis import settings as hypothesis_settings

from app.events import InProcessEventBus
from app.state import InMemoryStateBackend
from app.web import create_app
from containers import Container, create_container
from settings import Settings, load_settings
from tests.fakes.elasticsearch_server import FakeElasticsearch
from tests.fakes.vectors import FakeVectorIndex
from tests.services import (
    ELASTICSEARCH_URL,
    POSTGRES_DSN,
    RABBITMQ_URL,
    REDIS_URL,
    create_database,
    delete_bus_topology,
    drop_database,
    require_service,
    with_database,
)

# CI runs the property tests with fixed seeds (a red CI must be reproducible); locally each run
# explores new examples.
hypothesis_settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    hypothesis_settings.load_profile("ci")


@pytest.fixture
def unique_name() -> str:
    """A name no other test (or test run) uses: for key prefixes, queues, schemas."""
    return f"t{uuid.uuid4().hex[:12]}"


@pytest.fixture
def redis_url() -> str:
    """The real Redis on loopback; fails in CI and skips elsewhere when it is down."""
    return require_service("Redis", REDIS_URL)


@pytest.fixture(scope="session")
def session_postgres_dsn() -> Iterator[str]:
    """A database of this session's own on the real Postgres, dropped after: the tests'
    migrations and tables never meet another run's (a shared database's migration ledger
    would fail every later run whose files differ)."""
    admin_dsn = require_service("Postgres", POSTGRES_DSN)
    name = f"session_{uuid.uuid4().hex[:12]}"
    asyncio.run(create_database(admin_dsn, name))
    yield with_database(admin_dsn, name)
    asyncio.run(drop_database(admin_dsn, name))


@pytest.fixture
def postgres_dsn(session_postgres_dsn: str) -> str:
    """The real Postgres on loopback (this session's database); fails in CI and skips
    elsewhere when it is down."""
    return session_postgres_dsn


@pytest.fixture
def rabbitmq_url() -> str:
    """The real RabbitMQ on loopback; fails in CI and skips elsewhere when it is down."""
    return require_service("RabbitMQ", RABBITMQ_URL)


@pytest.fixture
async def rabbitmq_exchange(rabbitmq_url: str, unique_name: str) -> AsyncIterator[str]:
    """A fresh exchange name; what a bus declared under it is deleted after the test."""
    yield unique_name
    await delete_bus_topology(rabbitmq_url, unique_name)


@pytest.fixture
async def elasticsearch_url() -> AsyncIterator[str]:
    """A real Elasticsearch when ELASTICSEARCH_URL is set, otherwise the loopback HTTP fake."""
    if ELASTICSEARCH_URL:
        yield ELASTICSEARCH_URL
        return
    async with FakeElasticsearch() as url:
        yield url


# --- The service under test, and the override pattern (copy this into your own tests) --------

API_TOKEN = "test-token"


@pytest.fixture
def app_settings(tmp_path: Path) -> Settings:
    """single_node settings isolated in tmp_path: embedded Postgres, small vectors, one token."""
    return load_settings(
        data_dir=tmp_path / "data",
        faiss={"index_path": tmp_path / "faiss", "dimension": 4},
        api={"tokens": [API_TOKEN], "rate_limit": 10_000},
        log={"level": "WARNING"},
    )


@asynccontextmanager
async def serve_app(container: Container) -> AsyncIterator[httpx.AsyncClient]:
    """Run the app's lifespan (start/stop the backends) and talk to it over ASGI."""
    app = create_app(container)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(
            transport=transport,
            base_url="http://testserver",
            headers={"Authorization": f"Bearer {API_TOKEN}"},
        ) as client:
            yield client


@pytest.fixture
async def api(app_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client on the real app with real single_node backends."""
    async with serve_app(create_container(app_settings)) as client:
        yield client


@dataclass
class Fakes:
    """The fakes put in place of the real state backend, event bus and vector index."""

    state: InMemoryStateBackend
    bus: InProcessEventBus
    vectors: FakeVectorIndex


@pytest.fixture
async def fakes() -> AsyncIterator[Fakes]:
    """In-memory fakes; the test owns their lifecycle (the container does not start them)."""
    made = Fakes(InMemoryStateBackend(), InProcessEventBus(), FakeVectorIndex(dimension=4))
    yield made
    await made.bus.close(1.0)
    await made.state.close()


@pytest.fixture
def overridden_container(app_settings: Settings, fakes: Fakes) -> Iterator[Container]:
    """A container whose state backend, event bus and vectors are the fakes."""
    container = create_container(app_settings)
    container.state_backend.override(providers.Object(fakes.state))
    container.event_bus.override(providers.Object(fakes.bus))
    container.vectors.override(providers.Object(fakes.vectors))
    yield container
    container.unwire()
    container.reset_override()


def is_started(provider: object) -> bool:
    """Whether a ``Resource`` provider (typed loosely by the container's aliases) is started."""
    assert isinstance(provider, providers.Resource), provider
    return bool(provider.initialized)
