"""Every ``VectorStore`` the contract suite runs on, opened the same way.

``faiss`` (operations inline), ``faiss-pool`` (every operation on the worker threads,
queries batched), ``pgvector`` (a fresh schema on the session's pgserver, dropped after)
and ``fake`` (tests/fakes/vectors.py, the override example).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import pytest

import app.vectors.index as index_module
from app.vectors import VectorIndex, VectorStore
from app.vectors.pgvector import PgVectorStore, init_connection
from tests.fakes.vectors import FakeVectorIndex

STORE_KINDS = ["faiss", "faiss-pool", "pgvector", "fake"]


@asynccontextmanager
async def pgvector_pool(uri: str, ef_search: int | None = None) -> AsyncIterator[asyncpg.Pool]:
    """A small pool whose connections carry pgvector's codec (and, given ``ef_search``,
    that as their default, as the container's pool does)."""
    settings = {} if ef_search is None else {"hnsw.ef_search": str(ef_search)}
    pool = await asyncpg.create_pool(
        uri, init=init_connection, min_size=1, max_size=4, server_settings=settings
    )
    try:
        yield pool
    finally:
        await pool.close()


async def drop_schema(uri: str, schema: str) -> None:
    connection = await asyncpg.connect(uri)
    try:
        await connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await connection.close()


@asynccontextmanager
async def pgvector_store(
    uri: str,
    schema: str,
    dimension: int,
    *,
    session_ef_search: int | None = None,
    **options: Any,
) -> AsyncIterator[PgVectorStore]:
    """An open ``PgVectorStore`` in ``schema`` (its own pool); the schema stays afterwards."""
    async with pgvector_pool(uri, session_ef_search) as pool:
        store = PgVectorStore(pool, dimension, schema=schema, **options)
        await store.open()
        try:
            yield store
        finally:
            await store.close()


@asynccontextmanager
async def open_store(
    kind: str,
    dimension: int,
    *,
    tmp_path: Path,
    pgvector_uri: Callable[[], str],
    schema: str,
    monkeypatch: pytest.MonkeyPatch | None = None,
) -> AsyncIterator[VectorStore]:
    """A fresh, empty store of ``kind``; ``pgvector_uri`` is called only for pgvector."""
    if kind in {"faiss", "faiss-pool"}:
        if kind == "faiss-pool":
            assert monkeypatch is not None
            monkeypatch.setattr(index_module, "INLINE_MAX_CELLS", 0)
            monkeypatch.setattr(index_module, "BATCH_MIN_CELLS", 0)
        index = VectorIndex(tmp_path / "index", dimension, threads=2)
        try:
            yield index
        finally:
            await index.close()
    elif kind == "pgvector":
        uri = pgvector_uri()
        try:
            async with pgvector_store(uri, schema, dimension) as store:
                yield store
        finally:
            await drop_schema(uri, schema)
    elif kind == "fake":
        fake = FakeVectorIndex(dimension)
        try:
            yield fake
        finally:
            await fake.close()
    else:
        raise ValueError(f"unknown store kind {kind!r}")
