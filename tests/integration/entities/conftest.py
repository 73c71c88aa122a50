"""Fixtures for the entity tests: a database of the test's own with the entity tables, a
store on it, and the HTTP API in both deployment modes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest

from app.entities import CATALOG, EntityStore
from app.entities.schema import apply_migrations
from containers import Container, create_container
from settings import Settings, load_settings
from tests.conftest import API_TOKEN, serve_app
from tests.services import delete_bus_topology

Mode = Literal["single_node", "distributed"]


def database_dsn(server_dsn: str, database: str) -> str:
    """``server_dsn`` pointing at ``database`` instead."""
    parts = urlsplit(server_dsn)
    return urlunsplit(parts._replace(path=f"/{database}"))


@pytest.fixture
async def database(postgres_dsn: str, unique_name: str) -> AsyncIterator[str]:
    """A fresh database with the entity tables (DSN); dropped after the test."""
    admin = await asyncpg.connect(postgres_dsn)
    await admin.execute(f'CREATE DATABASE "{unique_name}"')
    dsn = database_dsn(postgres_dsn, unique_name)
    try:
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
        try:
            await apply_migrations(pool)
        finally:
            await pool.close()
        yield dsn
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{unique_name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture
async def pool(database: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool on the test's database."""
    made = await asyncpg.create_pool(database, min_size=1, max_size=20)
    yield made
    await made.close()


@pytest.fixture
def store(pool: asyncpg.Pool) -> EntityStore:
    """The entity store of the five original types on the test's database."""
    return EntityStore(pool, CATALOG)


def mode_settings(
    mode: Mode, root: Path, *, dsn: str, rabbitmq_url: str, redis_url: str, name: str
) -> Settings:
    """single_node: embedded Postgres, memory state, in-process bus. distributed: the
    Postgres server (the test's database), Redis state and pub/sub, RabbitMQ bus."""
    common = {
        "data_dir": root / "data",
        "faiss": {"index_path": root / "faiss", "dimension": 4},
        "api": {"tokens": [API_TOKEN], "rate_limit": 1_000_000},
        "log": {"level": "WARNING"},
        "entities": {"poll_interval_s": 0.2, "standby_retry_s": 0.2},
    }
    if mode == "single_node":
        return load_settings(**common)
    return load_settings(
        **common,
        deployment_mode="distributed",
        event_bus="rabbitmq",
        postgres={"dsn": dsn},
        redis={"url": redis_url},
        rabbitmq={"url": rabbitmq_url, "exchange": name},
        state={"namespace": name},
        vectors={"backend": "faiss"},  # the loopback Postgres 15 has no pgvector
    )


@pytest.fixture(params=["single_node", "distributed"])
def mode_config(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    postgres_dsn: str,
    unique_name: str,
) -> Iterator[Settings]:
    """The settings of one deployment mode, isolated (own database, namespace, exchange).

    A plain fixture: it asks for the distributed mode's services only in that mode (an
    async fixture cannot ask for other async fixtures by name)."""
    mode: Mode = request.param
    if mode == "single_node":
        yield mode_settings(mode, tmp_path, dsn="", rabbitmq_url="", redis_url="", name=unique_name)
        return
    rabbitmq_url: str = request.getfixturevalue("rabbitmq_url")
    redis_url: str = request.getfixturevalue("redis_url")
    dsn: str = request.getfixturevalue("database")
    yield mode_settings(
        mode, tmp_path, dsn=dsn, rabbitmq_url=rabbitmq_url, redis_url=redis_url, name=unique_name
    )
    asyncio.run(delete_bus_topology(rabbitmq_url, unique_name))


@dataclass
class Served:
    """The app under test: its HTTP client and its container (to reach the bus)."""

    client: httpx.AsyncClient
    container: Container
    settings: Settings


@pytest.fixture
async def served(mode_config: Settings) -> AsyncIterator[Served]:
    """The real app in the mode's real stack."""
    container = create_container(mode_config)
    async with serve_app(container) as client:
        yield Served(client, container, mode_config)


@pytest.fixture
def entity_api(served: Served) -> httpx.AsyncClient:
    """An HTTP client on the real app in the mode's real stack."""
    return served.client
