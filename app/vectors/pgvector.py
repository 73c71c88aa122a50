"""``PgVectorStore``: the ``VectorStore`` contract on Postgres with pgvector, for many instances.

Every instance of the service talks to the same tables, so a write one instance has
acknowledged is committed, and a query through any other instance sees it at once (V10).
Nothing is kept on local disk; ``save()`` and ``load()`` cost nothing (``load()`` drops
cached table names). The pool is the container's Postgres pool, whose connections must
carry pgvector's codec: create it with ``init=init_connection`` (``app.backends.
postgres_pool`` does when ``VECTORS__BACKEND`` selects pgvector).

Search is exact below ``hnsw_min_rows`` rows per namespace. A namespace that reaches it
gets an HNSW index (``vector_ip_ops``; built in the background after an upsert, before
``bulk_load`` returns), used for unfiltered queries with ``hnsw.ef_search = ef_search``:
one statement when the pool's connections have that as their default (the container's
pool starts them with it), else ``SET LOCAL`` in a read-only transaction.

Filtered queries stay exact pre-filters (V11) whatever the selectivity. With an index,
the store counts the matching rows up to ``exact_max_rows`` (the GIN index on metadata
finds them): at most that many are ranked exactly in a ``MATERIALIZED`` CTE; more are
searched through the index's ``filtered_ef_search`` nearest rows, and if fewer than
``top_k`` of those match, exactly again. The decision is kept for ``FILTER_PATH_TTL_S``
per namespace and filter. The path is never left to the planner: at 1 % selectivity it
chose the HNSW index and returned 0.44 rows of 10.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import asyncpg
import numpy as np
import numpy.typing as npt
import structlog
from pgvector import Vector

from app.errors import (
    BackendClosedError,
    NotStartedError,
    ReadOnlyIndexError,
    VectorStoreUnavailableError,
)
from app.vectors import pgvector_sql as sql
from app.vectors.filters import Filter, parse_filter
from app.vectors.models import BatchItem, VectorMatch, VectorRecord
from app.vectors.pgvector_batches import prepared_batch
from app.vectors.pgvector_hnsw import HnswIndexes
from app.vectors.pgvector_schema import Capabilities, Tables, ensure_extension, init_connection
from app.vectors.pgvector_search import Search
from app.vectors.validation import (
    check_id,
    check_id_collection,
    check_namespace,
    check_top_k,
    encode_metadata,
    normalised_vector,
    split_items,
)

if TYPE_CHECKING:
    from app.vectors.pgvector_schema import Connection

__all__ = ["PgVectorStore", "init_connection"]

log = structlog.get_logger(__name__)


class PgVectorStore:
    """Cosine-similarity search in Postgres + pgvector: one table per namespace."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        dimension: int,
        *,
        schema: str = "vectors",
        address: str = "postgres",
        hnsw_min_rows: int = 20_000,
        hnsw_m: int = 16,
        hnsw_ef_construction: int = 64,
        ef_search: int = 200,
        filtered_ef_search: int = 400,
        exact_max_rows: int = 2_000,
        hnsw_build_memory_mb: int = 512,
        read_only: bool = False,
    ) -> None:
        if isinstance(dimension, bool) or not isinstance(dimension, int) or dimension <= 0:
            msg = f"dimension must be a positive int, got {dimension!r}"
            raise ValueError(msg)
        self._pool = pool
        self._dimension = dimension
        self.address = address
        self._search = Search(
            ef_search=ef_search,
            filtered_ef_search=filtered_ef_search,
            exact_max_rows=exact_max_rows,
        )
        self.read_only = bool(read_only)
        self._tables = Tables(schema, dimension)
        self.capabilities: Capabilities | None = None
        self._table_names: dict[str, str] = {}
        self._indexes = HnswIndexes(
            pool,
            self._tables,
            min_rows=hnsw_min_rows,
            m=hnsw_m,
            ef_construction=hnsw_ef_construction,
            build_memory_mb=hnsw_build_memory_mb,
        )
        self._opened = False
        self._closed = False

    @property
    def dimension(self) -> int:
        return self._dimension

    @property
    def schema(self) -> str:
        return self._tables.schema

    # -- start and stop -------------------------------------------------------------

    async def open(self) -> None:
        """Check (or create) the extension, the dimension and the registry; see V14."""
        async with self._pool.acquire() as connection:
            found, created = await ensure_extension(
                connection, self.address, self.dimension, create=not self.read_only
            )
            self.capabilities = found
            if not self.read_only:
                await self._tables.create_registry(connection)
            wrong = []
            if await self._tables.exists(connection):
                wrong = await self._tables.mismatched_dimensions(connection)
        if wrong:
            listed = ", ".join(f"{row['name']} ({row['dimension']})" for row in wrong[:5])
            msg = (
                f"vector store: schema {self.schema!r} at {self.address} holds namespaces of "
                f"another dimension than FAISS__DIMENSION={self.dimension}: {listed}; use "
                "their dimension, or another VECTORS__SCHEMA"
            )
            raise VectorStoreUnavailableError(msg)
        if created:
            # Connections made before the extension existed have no vector codec.
            await self._pool.expire_connections()
        await self._check_codec()
        async with self._pool.acquire() as connection:
            session = await connection.fetchval("SELECT current_setting('hnsw.ef_search', true)")
        self._search.session_ef_search = int(session) if session and session.isdigit() else None
        self._opened = True
        log.info(
            "vectors.pgvector_opened",
            address=self.address,
            schema=self.schema,
            pgvector=found.version,
            extension_created=created,
        )

    async def _check_codec(self) -> None:
        probe = np.arange(1, 4, dtype=np.float32)
        async with self._pool.acquire() as connection:
            try:
                back = await connection.fetchval("SELECT $1::vector", probe)
            except (asyncpg.PostgresError, TypeError, ValueError) as exc:
                back = exc
        if not hasattr(back, "to_numpy") or not np.array_equal(back.to_numpy(), probe):
            msg = (
                f"vector store: the Postgres pool of {self.address} has no pgvector codec on "
                "its connections; create it with "
                "asyncpg.create_pool(..., init=app.vectors.pgvector.init_connection)"
            )
            raise VectorStoreUnavailableError(msg)

    async def close(self) -> None:
        """Stop index builds in flight (an interrupted build is redone later). Idempotent."""
        if self._closed:
            return
        self._closed = True
        await self._indexes.close()
        log.info("vectors.pgvector_closed", address=self.address, schema=self.schema)

    def _check_writable(self, operation: str) -> None:
        self._check_open()
        if self.read_only:
            msg = (
                f"{operation}() refused: vector store {self.address} (schema {self.schema}) is "
                "open read-only (read_only=True) and never writes"
            )
            raise ReadOnlyIndexError(msg)

    def _check_open(self) -> None:
        if self._closed:
            msg = f"vector store {self.address} (schema {self.schema}) is closed"
            raise BackendClosedError(msg)
        if not self._opened:
            msg = f"vector store {self.address} is not open; call open() at start"
            raise NotStartedError(msg)

    async def ping(self) -> None:
        """Raise unless open and Postgres answers."""
        self._check_open()
        async with self._pool.acquire() as connection:
            await connection.fetchval("SELECT 1")

    async def save(self) -> None:
        """Nothing to do: every acknowledged write is committed in Postgres."""
        self._check_open()

    async def load(self) -> None:
        """Nothing to load: the database is the state. Forgets cached table names."""
        self._check_open()
        self._table_names.clear()
        self._indexes.forget()

    # -- tables ---------------------------------------------------------------------

    async def _table_name(self, connection: Connection, namespace: str) -> str | None:
        """The namespace's table (unqualified), ``None`` while it has none."""
        name = self._table_names.get(namespace)
        if name is None:
            # Not cached when missing: another instance may create it any moment.
            name = await self._tables.lookup(connection, namespace)
            if name is not None:
                self._table_names[namespace] = name
        return name

    async def _table(self, connection: Connection, namespace: str) -> str | None:
        """The namespace's table, schema-qualified and quoted, ``None`` while it has none."""
        name = await self._table_name(connection, namespace)
        return None if name is None else self._tables.table(name)

    async def _table_for_write(self, connection: Connection, namespace: str) -> str:
        name = await self._table_name(connection, namespace)
        if name is None:
            name = await self._tables.create(connection, namespace)
            self._table_names[namespace] = name
        return name

    # -- writes ---------------------------------------------------------------------

    async def upsert(
        self,
        namespace: str,
        vector_id: str,
        vector: npt.ArrayLike,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        """Insert ``vector_id`` or replace its vector and metadata."""
        self._check_writable("upsert")
        check_namespace(namespace)
        checked_id = check_id(vector_id)
        encoded = encode_metadata(metadata)
        unit = normalised_vector(vector, self.dimension)
        await self._write(namespace, [checked_id], [Vector(unit)], [encoded])

    async def upsert_many(self, namespace: str, items: Iterable[BatchItem]) -> None:
        """Upsert ``VectorRecord``, ``(id, vector)`` or ``(id, vector, metadata)`` items."""
        self._check_writable("upsert_many")
        ids, vectors, metadata = split_items(items)
        await self.upsert_arrays(namespace, ids, vectors, metadata)

    async def upsert_arrays(
        self,
        namespace: str,
        ids: Sequence[str],
        vectors: npt.ArrayLike | Sequence[npt.ArrayLike],
        metadata: Sequence[Mapping[str, Any] | None] | None = None,
    ) -> None:
        """Upsert a batch given as columns, validated whole, in one statement."""
        self._check_writable("upsert_arrays")
        check_namespace(namespace)
        batch, encoded = await prepared_batch(ids, vectors, metadata, self.dimension)
        if batch.ids:
            units = batch.vectors * batch.scale[:, None]
            # Vector objects: asyncpg would take a bare ndarray in an array for a sub-array.
            await self._write(namespace, batch.ids, [Vector(row) for row in units], encoded)

    async def _write(
        self,
        namespace: str,
        ids: list[str],
        vectors: list[Vector],
        metadata: list[str | None],
    ) -> None:
        async with self._pool.acquire() as connection:
            name = await self._table_for_write(connection, namespace)
            await connection.execute(
                sql.upsert_sql(self._tables.table(name)), ids, vectors, metadata
            )
        await self._indexes.after_write(name, len(ids))

    async def bulk_load(
        self,
        namespace: str,
        ids: Sequence[str],
        vectors: npt.ArrayLike,
        metadata: Sequence[Mapping[str, Any] | None] | None = None,
        *,
        build_index: bool = True,
    ) -> None:
        """Load a large batch with COPY, then build the HNSW index once (a large import).

        Validated whole first. Into an empty namespace the rows are copied straight in,
        without the HNSW index (it is dropped first, and rebuilt after when the namespace
        reaches ``hnsw_min_rows``); into a non-empty one through a temporary table, as an
        upsert. One transaction: readers see all of it or none. ``build_index=False``
        leaves the index to the next write's background build.
        """
        self._check_writable("bulk_load")
        check_namespace(namespace)
        batch, encoded = await prepared_batch(ids, vectors, metadata, self.dimension)
        units = batch.vectors * batch.scale[:, None]
        records = list(zip(batch.ids, units, encoded, strict=True))
        columns = ["id", "embedding", "metadata"]
        loaded: int | None = None  # the namespace's size, when it was empty before
        async with self._pool.acquire() as connection:
            table_name = await self._table_for_write(connection, namespace)
            table, schema_name = self._tables.table(table_name), self._tables.schema
            async with connection.transaction():
                empty = not await connection.fetchval(f"SELECT EXISTS (SELECT 1 FROM {table})")
                if empty:
                    loaded = len(records)
                    index = self._tables.index_name(table_name)
                    await connection.execute(f"DROP INDEX IF EXISTS {self._tables.table(index)}")
                    await connection.copy_records_to_table(
                        table_name, schema_name=schema_name, records=records, columns=columns
                    )
                else:
                    await connection.execute(
                        f"CREATE TEMPORARY TABLE bulk_load (LIKE {table}) ON COMMIT DROP"
                    )
                    await connection.copy_records_to_table(
                        "bulk_load", records=records, columns=columns
                    )
                    await connection.execute(
                        f"INSERT INTO {table} SELECT * FROM bulk_load ON CONFLICT (id) DO "
                        "UPDATE SET embedding = EXCLUDED.embedding, metadata = EXCLUDED.metadata"
                    )
        await self._indexes.loaded(table_name, loaded, build=build_index)

    async def build_index(self, namespace: str) -> None:
        """Build the namespace's HNSW index now (``CREATE INDEX CONCURRENTLY``), if missing."""
        self._check_writable("build_index")
        check_namespace(namespace)
        async with self._pool.acquire() as connection:
            table_name = await self._table_name(connection, namespace)
        if table_name is not None:
            await self._indexes.build(table_name)

    async def delete(self, namespace: str, vector_id: str) -> bool:
        """Remove ``vector_id``; ``True`` iff it existed."""
        return await self.delete_many(namespace, [vector_id]) == 1

    async def delete_many(self, namespace: str, ids: Iterable[str]) -> int:
        """Remove every listed id that exists; how many were removed."""
        self._check_writable("delete_many")
        check_namespace(namespace)
        checked = [
            check_id(vector_id, row=row) for row, vector_id in enumerate(check_id_collection(ids))
        ]
        async with self._pool.acquire() as connection:
            table = await self._table(connection, namespace)
            if table is None or not checked:
                return 0
            status = await connection.execute(sql.delete_sql(table), checked)
        return int(status.split()[-1])

    # -- reads ----------------------------------------------------------------------

    async def query(
        self,
        namespace: str,
        vector: npt.ArrayLike,
        top_k: int = 10,
        *,
        filter: Filter | None = None,
    ) -> list[VectorMatch]:
        """The ``min(top_k, matches)`` most similar vectors, best first (filter before ranking)."""
        self._check_open()
        check_namespace(namespace)
        k = check_top_k(top_k)
        clauses = parse_filter(filter)
        unit = normalised_vector(vector, self.dimension)
        async with self._pool.acquire() as connection:
            table_name = await self._table_name(connection, namespace)
            if table_name is None:
                return []
            table = self._tables.table(table_name)
            indexed = await self._indexes.ready(connection, table_name)
            if not indexed:
                return await self._search.exact(connection, table, clauses, unit, k)
            if clauses is None:
                return await self._search.unfiltered(connection, table, unit, k)
            return await self._search.filtered(connection, table, clauses, unit, k)

    async def get(self, namespace: str, ids: Iterable[str]) -> list[VectorRecord]:
        """The stored records of those ids that exist, in the order asked (unit vectors)."""
        self._check_open()
        check_namespace(namespace)
        checked = [
            check_id(vector_id, row=row) for row, vector_id in enumerate(check_id_collection(ids))
        ]
        async with self._pool.acquire() as connection:
            table = await self._table(connection, namespace)
            if table is None or not checked:
                return []
            rows = await connection.fetch(sql.get_sql(table), checked)
        stored = {row["id"]: row for row in rows}
        return [
            VectorRecord(
                vector_id,
                stored[vector_id]["embedding"].to_numpy().copy(),
                None
                if stored[vector_id]["metadata"] is None
                else json.loads(stored[vector_id]["metadata"]),
            )
            for vector_id in checked
            if vector_id in stored
        ]

    async def count(self, namespace: str) -> int:
        """How many vectors ``namespace`` holds (0 for an unknown namespace)."""
        self._check_open()
        check_namespace(namespace)
        async with self._pool.acquire() as connection:
            table = await self._table(connection, namespace)
            if table is None:
                return 0
            count: int = await connection.fetchval(f"SELECT count(*) FROM {table}")
        return count

    async def namespaces(self) -> list[str]:
        """The namespaces holding at least one vector, sorted."""
        self._check_open()
        async with self._pool.acquire() as connection:
            registered = await self._tables.all(connection)
            if not registered:
                return []
            probes = " UNION ALL ".join(
                f"SELECT ${i + 1}::text AS name WHERE EXISTS "
                f"(SELECT 1 FROM {self._tables.table(table)})"
                for i, (_, table) in enumerate(registered)
            )
            rows = await connection.fetch(probes, *(name for name, _ in registered))
        return sorted(row["name"] for row in rows)
