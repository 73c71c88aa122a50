"""The vectors layer: a ``Selector`` between the FAISS index and the pgvector store.

``VECTORS__BACKEND`` picks the store (``auto``: FAISS in single_node, pgvector in
distributed); ``index`` hands out whichever is selected, typed as ``VectorStore``, so the
HTTP routes, ``DataLayer.vectors`` and ``@inject``-ed services use it unchanged.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
from dependency_injector import containers, providers

from app.vectors import VectorIndex, VectorStore
from app.vectors.pgvector import PgVectorStore
from containers.declarations import Managed, ping_method
from settings import FaissSettings, Settings, VectorsBackend

__all__ = ["VectorsContainer", "describe_store", "pgvector_store", "vector_index"]

# The index saves a full snapshot at stop, which for a large index takes a while.
VECTORS_STOP_TIMEOUT_S = 120.0
TIMEOUT_MARGIN_S = 5.0


async def vector_index(
    settings: FaissSettings, *, read_only: bool = False
) -> AsyncIterator[VectorIndex]:
    """Load the snapshot (a corrupt one fails the start), save periodically and at stop.

    ``read_only``: load and verify the snapshot beside a running writer, without its lock,
    autosave or the save at stop; every write raises ``ReadOnlyIndexError`` (the probe's mode).
    """
    index = VectorIndex(
        settings.index_path, settings.dimension, threads=settings.threads, read_only=read_only
    )
    try:
        await index.load()
    except BaseException:
        await index.close()
        raise
    if settings.save_interval_s > 0 and not read_only:
        index.start_autosave(settings.save_interval_s)
    try:
        yield index
    finally:
        try:
            if not read_only:
                await index.save()
        finally:
            await index.close()


def postgres_address(settings: Settings) -> str:
    """Where the Postgres of the pool is, password masked."""
    if settings.embedded_postgres:
        return f"embedded:{settings.data_dir / 'postgres'}"
    return settings.postgres.address()


async def pgvector_store(
    pool: asyncpg.Pool, settings: Settings, *, read_only: bool = False
) -> AsyncIterator[PgVectorStore]:
    """Open the store on the container's pool: extension, dimension and registry checked
    (V14: a server without pgvector fails the start here); ``read_only`` creates nothing."""
    tuning = settings.vectors
    store = PgVectorStore(
        pool,
        settings.faiss.dimension,
        schema=tuning.schema_name,
        address=postgres_address(settings),
        hnsw_min_rows=tuning.hnsw_min_rows,
        hnsw_m=tuning.hnsw_m,
        hnsw_ef_construction=tuning.hnsw_ef_construction,
        ef_search=tuning.ef_search,
        filtered_ef_search=tuning.filtered_ef_search,
        exact_max_rows=tuning.exact_max_rows,
        hnsw_build_memory_mb=tuning.hnsw_build_memory_mb,
        read_only=read_only,
    )
    try:
        await store.open()
        yield store
    finally:
        await store.close()


def describe_store(store: VectorStore) -> str:
    """One line for ``python -m app check``: which store, where, and pgvector's version."""
    if isinstance(store, PgVectorStore):
        version = "?" if store.capabilities is None else store.capabilities.version
        return f"pgvector {version} {store.address} schema={store.schema}"
    if isinstance(store, VectorIndex):
        return f"faiss {store.index_path}"
    return type(store).__name__


def _address(settings: Settings) -> str:
    if settings.vector_backend is VectorsBackend.PGVECTOR:
        return f"pgvector:{postgres_address(settings)} schema={settings.vectors.schema_name}"
    return str(settings.faiss.index_path)


def _start_timeout(settings: Settings) -> float:
    if settings.vector_backend is VectorsBackend.PGVECTOR:
        # After the pool is up: a few statements (extension, registry), each bounded by it.
        return 2 * settings.postgres.command_timeout_s + TIMEOUT_MARGIN_S
    return 30.0  # loading a snapshot


class VectorsContainer(containers.DeclarativeContainer):
    """``index`` is the selected ``VectorStore``; override ``read_only`` with ``True`` for a
    reader that verifies and never writes (``python -m app check``)."""

    settings = providers.Dependency(instance_of=Settings)
    postgres: providers.Dependency[asyncpg.Pool] = providers.Dependency()
    read_only = providers.Object(False)

    faiss = providers.Resource(vector_index, settings.provided.faiss, read_only=read_only)
    pgvector = providers.Resource(pgvector_store, postgres, settings, read_only=read_only)
    # Keys are VectorsBackend values ("faiss", "pgvector"), as Settings.vector_backend gives.
    index = providers.Selector(settings.provided.vector_backend, faiss=faiss, pgvector=pgvector)
    index_lifecycle = Managed(
        "index",
        name="vectors",
        ping=ping_method,
        address=_address,
        start_timeout_s=_start_timeout,
        stop_timeout_s=VECTORS_STOP_TIMEOUT_S,
    )
