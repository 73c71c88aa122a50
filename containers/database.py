"""The database layer: the ``DATABASE__BACKEND`` client over the container's Postgres pool.

The client is made by the backend registry on the pool the backends layer opened (never a
second pool); with ``POSTGRES__MIGRATE=auto`` the pending migrations run before it is handed
out, so a service that starts has its schema.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
from dependency_injector import containers, providers

from app.database import DatabaseClient, create_database_client
from settings import Settings

__all__ = ["DatabaseContainer", "database_client", "ping_database"]


async def database_client(settings: Settings, pool: asyncpg.Pool) -> AsyncIterator[DatabaseClient]:
    """The registered backend's client on ``pool``, migrated; closed (pool left open) at stop."""
    client = await create_database_client(settings, pool=pool)
    try:
        yield client
    finally:
        await client.close()


async def ping_database(client: DatabaseClient) -> None:
    await client.ping()


class DatabaseContainer(containers.DeclarativeContainer):
    """``client``: the database client; override it with a fake in tests."""

    settings = providers.Dependency(instance_of=Settings)
    postgres = providers.Dependency(instance_of=asyncpg.Pool)

    client = providers.Resource(database_client, settings, postgres)
