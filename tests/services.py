"""Where the integration tests find the real services, and what happens when one is down.

``REQUIRE_SERVICES=1`` (set by ``.ci/run``) turns an unreachable service into a test
failure; without it the test is skipped with the reason, and pytest counts the skip.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable
from functools import cache
from urllib.parse import urlsplit, urlunsplit

import aio_pika
import asyncpg
import pytest

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
POSTGRES_DSN = os.environ.get("TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")
RABBITMQ_URL = os.environ.get("TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")
ELASTICSEARCH_URL = os.environ.get("ELASTICSEARCH_URL")


def services_required() -> bool:
    return os.environ.get("REQUIRE_SERVICES", "").lower() in {"1", "true", "yes"}


@cache
def _reachable(host: str, port: int) -> str | None:
    try:
        with socket.create_connection((host, port), timeout=2.0):
            return None
    except OSError as exc:
        return f"{host}:{port} unreachable ({exc})"


def require_service(name: str, url: str) -> str:
    """Return ``url`` if its server accepts TCP connections; otherwise fail or skip the test."""
    parts = urlsplit(url)
    problem = _reachable(parts.hostname or "127.0.0.1", parts.port or 0)
    if problem is not None:
        reason = f"{name} not reachable: {problem}"
        if services_required():
            pytest.fail(f"{reason} (REQUIRE_SERVICES=1, so this is a failure)")
        pytest.skip(reason)
    return url


async def delete_bus_topology(url: str, exchange: str, queues: Iterable[str] = ()) -> None:
    """Delete what a RabbitMQEventBus declared: its exchange, dead-letter exchange and queues."""
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        for name in sorted({f"{exchange}.dead-letter", *queues}):
            await channel.queue_delete(name)
        await channel.exchange_delete(exchange)
        await channel.exchange_delete(f"{exchange}.dead-letter")
    finally:
        await connection.close()


def with_database(dsn: str, database: str) -> str:
    """``dsn`` pointing at another database on the same server."""
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=f"/{database}"))


async def create_database(admin_dsn: str, name: str) -> None:
    """Create the database ``name`` on ``admin_dsn``'s server."""
    connection = await asyncpg.connect(admin_dsn)
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()


async def drop_database(admin_dsn: str, name: str) -> None:
    """Drop the database ``name``, disconnecting whoever still uses it."""
    connection = await asyncpg.connect(admin_dsn)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()
