"""Shared fixtures: real services on loopback and isolated names for each test."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from tests.fakes.elasticsearch_server import FakeElasticsearch
from tests.services import (
    ELASTICSEARCH_URL,
    POSTGRES_DSN,
    RABBITMQ_URL,
    REDIS_URL,
    require_service,
)


@pytest.fixture
def unique_name() -> str:
    """A name no other test (or test run) uses: for key prefixes, queues, schemas."""
    return f"t{uuid.uuid4().hex[:12]}"


@pytest.fixture
def redis_url() -> str:
    """The real Redis on loopback; fails in CI and skips elsewhere when it is down."""
    return require_service("Redis", REDIS_URL)


@pytest.fixture
def postgres_dsn() -> str:
    """The real Postgres on loopback; fails in CI and skips elsewhere when it is down."""
    return require_service("Postgres", POSTGRES_DSN)


@pytest.fixture
def rabbitmq_url() -> str:
    """The real RabbitMQ on loopback; fails in CI and skips elsewhere when it is down."""
    return require_service("RabbitMQ", RABBITMQ_URL)


@pytest.fixture
async def elasticsearch_url() -> AsyncIterator[str]:
    """A real Elasticsearch when ELASTICSEARCH_URL is set, otherwise the loopback HTTP fake."""
    if ELASTICSEARCH_URL:
        yield ELASTICSEARCH_URL
        return
    async with FakeElasticsearch() as url:
        yield url
