"""Fixtures for the conversation and export/import tests: a pool and a schema of one's own."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from app.data import ConversationHistoryUnit


@pytest.fixture
async def pg_pool(postgres_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    """A small pool on the shared test database."""
    pool = await asyncpg.create_pool(postgres_dsn, min_size=1, max_size=4)
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture
async def schema(pg_pool: asyncpg.Pool, unique_name: str) -> AsyncIterator[str]:
    """A schema only this test uses, dropped with everything in it afterwards."""
    await pg_pool.execute(f'CREATE SCHEMA "{unique_name}"')
    try:
        yield unique_name
    finally:
        await pg_pool.execute(f'DROP SCHEMA "{unique_name}" CASCADE')


@pytest.fixture
async def history(pg_pool: asyncpg.Pool, schema: str) -> ConversationHistoryUnit:
    """An initialised history unit on ``<schema>.conversations``."""
    unit = ConversationHistoryUnit(pg_pool, table_name=f"{schema}.conversations")
    await unit.initialize()
    return unit
