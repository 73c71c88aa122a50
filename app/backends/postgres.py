"""The Postgres resource: an ``asyncpg`` pool, on the embedded server or a configured one."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from app.backends.embedded_postgres import embedded_postgres
from app.vectors.pgvector_schema import init_connection
from settings import PostgresSettings, Settings, VectorsBackend

__all__ = ["ping_postgres", "pool_options", "postgres_pool"]

POOL_CLOSE_TIMEOUT_S = 10.0


def pool_options(settings: PostgresSettings) -> dict[str, Any]:
    """The ``asyncpg.create_pool`` options from ``POSTGRES__*`` (all but the DSN)."""
    return {
        "min_size": settings.min_connections,
        "max_size": settings.max_connections,
        "timeout": settings.connect_timeout_s,
        "command_timeout": settings.command_timeout_s,
        "server_settings": {"application_name": settings.application_name},
    }


@asynccontextmanager
async def _pool(
    dsn: str, settings: PostgresSettings, *, ef_search: int | None
) -> AsyncIterator[asyncpg.Pool]:
    options = pool_options(settings)
    init = None
    if ef_search is not None:
        # The pgvector store needs pgvector's codec on every connection the pool makes, and
        # its ef_search as the session's default (RESET ALL at release keeps it), so that an
        # unfiltered indexed query is one statement, without SET LOCAL in a transaction.
        init = init_connection
        options["server_settings"]["hnsw.ef_search"] = str(ef_search)
    pool = await asyncpg.create_pool(dsn, init=init, **options)
    try:
        yield pool
    finally:
        try:
            await asyncio.wait_for(pool.close(), POOL_CLOSE_TIMEOUT_S)
        except BaseException:
            pool.terminate()
            raise


async def postgres_pool(settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    """Yield a pool on the embedded server (single_node without a server) or the configured one.

    With ``VECTORS__BACKEND`` selecting pgvector, each new connection registers its codec.
    """
    pgvector = settings.vector_backend is VectorsBackend.PGVECTOR
    ef_search = settings.vectors.ef_search if pgvector else None
    if settings.embedded_postgres:
        pgdata = settings.data_dir / "postgres"
        async with (
            embedded_postgres(pgdata, settings.postgres.database) as uri,
            _pool(uri, settings.postgres, ef_search=ef_search) as pool,
        ):
            yield pool
        return
    dsn = settings.postgres.connection_dsn().get_secret_value()
    async with _pool(dsn, settings.postgres, ef_search=ef_search) as pool:
        yield pool


async def ping_postgres(pool: asyncpg.Pool) -> None:
    await pool.fetchval("SELECT 1")
