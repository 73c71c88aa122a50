"""Typed accessors: mypy sees a ``Selector`` as ``Any``; these return what the providers give.

Each resolves the container's public provider (an override included), so call them after the
lifecycle has started the backends: an unstarted async ``Resource`` would start on first use.
"""

from __future__ import annotations

import inspect
from typing import Any, cast

import asyncpg
import redis.asyncio as aioredis
from aio_pika.abc import AbstractRobustConnection
from elasticsearch import AsyncElasticsearch

from app.database import DatabaseClient, PostgreSQLClient
from app.entities.runtime import Entities
from app.events import EventBus
from app.state import StateBackend
from app.vectors import VectorStore
from containers.application import Container
from settings import Settings

__all__ = [
    "get_database",
    "get_elasticsearch",
    "get_entities",
    "get_event_bus",
    "get_postgres",
    "get_rabbitmq",
    "get_redis",
    "get_settings",
    "get_state_backend",
    "get_vectors",
    "resolve",
]


async def resolve(provider: Any) -> Any:
    """Call a provider and await its result if it is awaitable (async resources are)."""
    value = provider()
    if inspect.isawaitable(value):
        return await value
    return value


async def get_settings(container: Container) -> Settings:
    return cast(Settings, await resolve(container.settings))


async def get_redis(container: Container) -> aioredis.Redis:
    return cast(aioredis.Redis, await resolve(container.redis))


async def get_postgres(container: Container) -> asyncpg.Pool:
    return cast(asyncpg.Pool, await resolve(container.postgres))


async def get_database(container: Container) -> PostgreSQLClient:
    """The database client; typed as ``PostgreSQLClient`` (the ``postgres`` backend's)."""
    client = cast(DatabaseClient, await resolve(container.database))
    if not isinstance(client, PostgreSQLClient):
        raise TypeError(
            f"container.database is a {type(client).__name__}, not a PostgreSQLClient "
            "(another DATABASE__BACKEND, or an override): resolve container.database instead"
        )
    return client


async def get_elasticsearch(container: Container) -> AsyncElasticsearch:
    return cast(AsyncElasticsearch, await resolve(container.elasticsearch))


async def get_rabbitmq(container: Container) -> AbstractRobustConnection:
    return cast(AbstractRobustConnection, await resolve(container.rabbitmq))


async def get_state_backend(container: Container) -> StateBackend:
    return cast(StateBackend, await resolve(container.state_backend))


async def get_event_bus(container: Container) -> EventBus:
    return cast(EventBus, await resolve(container.event_bus))


async def get_vectors(container: Container) -> VectorStore:
    return cast(VectorStore, await resolve(container.vectors))


async def get_entities(container: Container) -> Entities:
    return cast(Entities, await resolve(container.entities))
