"""The database layer: the ``DATABASE__BACKEND`` client over the container's Postgres pool.

The client is made by the backend registry on the pool the backends layer opened (never a
second pool); with ``POSTGRES__MIGRATE=auto`` the pending migrations run before it is handed
out, so a service that starts has its schema. It depends on ``postgres``: a test that
overrides ``postgres`` with something that is not a pool overrides ``database`` too.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
from dependency_injector import containers, providers

from app.database import DatabaseClient, create_database_client
from containers.declarations import Managed
from settings import Settings

__all__ = ["DatabaseContainer", "database_client", "ping_database"]

# Its start applies pending migrations, which may build indexes on big tables.
MIGRATIONS_START_TIMEOUT_S = 3600.0


async def database_client(
    settings: Settings, pool: asyncpg.Pool, *, apply_migrations: bool = True
) -> AsyncIterator[DatabaseClient]:
    """The registered backend's client on ``pool``, migrated unless ``apply_migrations`` is
    False or ``POSTGRES__MIGRATE=off``; closed (the pool left open) at stop."""
    client = await create_database_client(settings, pool=pool, auto_init_schema=apply_migrations)
    try:
        yield client
    finally:
        await client.close()


async def ping_database(client: DatabaseClient) -> None:
    await client.ping()


def _address(settings: Settings) -> str:
    if settings.embedded_postgres:
        return f"embedded:{settings.data_dir / 'postgres'}"
    return settings.postgres.address()


class DatabaseContainer(containers.DeclarativeContainer):
    """``client``: the database client; override it with a fake in tests. Override
    ``apply_migrations`` with ``False`` for a probe that must not change the schema."""

    settings = providers.Dependency(instance_of=Settings)
    postgres = providers.Dependency(instance_of=asyncpg.Pool)

    apply_migrations = providers.Object(True)
    client = providers.Resource(
        database_client, settings, postgres, apply_migrations=apply_migrations
    )
    client_lifecycle = Managed(
        "client",
        name="database",
        ping=ping_database,
        address=_address,
        start_timeout_s=MIGRATIONS_START_TIMEOUT_S,
    )
