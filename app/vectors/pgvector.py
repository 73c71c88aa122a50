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

import asyncio
import json
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

import asyncpg
import numpy as np
import numpy.typing as npt
import structlog
from pgvector import Vector

from app.errors import (
    BackendClosedError,
    InvalidIdentifierError,
    NotStartedError,
    ReadOnlyIndexError,
    VectorStoreUnavailableError,
)
from app.vectors import pgvector_sql as sql
from app.vectors.filters import Clause, Filter, parse_filter
from app.vectors.models import BatchItem, VectorMatch, VectorRecord
from app.vectors.pgvector_schema import Capabilities, Tables, ensure_extension, init_connection
from app.vectors.validation import (
    Batch,
    check_id,
    check_id_collection,
    check_ids,
    check_namespace,
    check_top_k,
    encode_metadata,
    normalised_vector,
    prepare_batch,
    split_items,
)

if TYPE_CHECKING:
    from app.vectors.pgvector_schema import Connection

__all__ = ["PgVectorStore", "init_connection"]

log = structlog.get_logger(__name__)

# How long the knowledge "this namespace has a valid HNSW index" is trusted before it is
# read again (an index another instance built is used at most this late; exact until then).
INDEX_STATE_TTL_S: Final = 2.0
# How long a filtered query's path (exact or through the index), decided by counting the
# matching rows, is reused for the same filter on the same namespace. Either path is exact
# for its case and the index path falls back to the exact one, so a stale decision costs
# time, never results; the count is paid once per filter and period, not per query.
FILTER_PATH_TTL_S: Final = 30.0
FILTER_PATHS_MAX: Final = 4096
# Batches of more floats than this are checked on a worker thread, not the event loop.
INLINE_MAX_CELLS: Final = 1 << 20


def _matches(rows: Iterable[asyncpg.Record]) -> list[VectorMatch]:
    found = [
        VectorMatch(
            row["id"],
            -float(row["distance"]),
            None if row["metadata"] is None else json.loads(row["metadata"]),
        )
        for row in rows
    ]
    found.sort(key=lambda match: (-match.score, match.id))
    return found


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
        self.hnsw_min_rows = hnsw_min_rows
        self.hnsw_m = hnsw_m
        self.hnsw_ef_construction = hnsw_ef_construction
        self.ef_search = ef_search
        self.filtered_ef_search = filtered_ef_search
        self.exact_max_rows = exact_max_rows
        self.hnsw_build_memory_mb = hnsw_build_memory_mb
        # (table, filter) -> (True: rank the matching rows exactly, decided at)
        self._filter_paths: dict[tuple[str, str], tuple[bool, float]] = {}
        self.read_only = bool(read_only)
        self._tables = Tables(schema, dimension)
        self.capabilities: Capabilities | None = None
        self._table_names: dict[str, str] = {}
        self._indexed: dict[str, tuple[bool, float]] = {}  # table -> (valid index, read at)
        self._rows: dict[str, int] = {}  # table -> rows at the last count + rows written since
        self._builds: dict[str, asyncio.Task[None]] = {}
        self._session_ef_search: int | None = None  # the pool's connections' default
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
        self._session_ef_search = int(session) if session and session.isdigit() else None
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
        builds = list(self._builds.values())
        for build in builds:
            build.cancel()
        await asyncio.gather(*builds, return_exceptions=True)
        self._builds.clear()
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
        self._indexed.clear()

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
        batch, encoded = await self._prepared(namespace, ids, vectors, metadata)
        if batch.ids:
            units = batch.vectors * batch.scale[:, None]
            # Vector objects: asyncpg would take a bare ndarray in an array for a sub-array.
            await self._write(namespace, batch.ids, [Vector(row) for row in units], encoded)

    async def _prepared(
        self,
        namespace: str,
        ids: Sequence[str],
        vectors: npt.ArrayLike | Sequence[npt.ArrayLike],
        metadata: Sequence[Mapping[str, Any] | None] | None,
    ) -> tuple[Batch, list[str | None]]:
        """``_prepare``, on a worker thread for a large batch (V7: 10k x 1536 took about
        25 ms of checks and copies, longer than the event loop should stall)."""
        if len(ids) * self.dimension <= INLINE_MAX_CELLS:
            return self._prepare(namespace, ids, vectors, metadata)
        return await asyncio.to_thread(self._prepare, namespace, ids, vectors, metadata)

    def _prepare(
        self,
        namespace: str,
        ids: Sequence[str],
        vectors: npt.ArrayLike | Sequence[npt.ArrayLike],
        metadata: Sequence[Mapping[str, Any] | None] | None,
    ) -> tuple[Batch, list[str | None]]:
        """The validated batch (a repeated id: its last row) and each kept row's metadata as
        JSON text. Metadata is checked and encoded once here (the batch carries none): the
        store sends text, and a copy as dicts would cost two more JSON passes a row."""
        check_namespace(namespace)
        check_id_collection(ids)
        if metadata is not None and len(metadata) != len(ids):
            msg = f"metadata must have one entry per id ({len(ids)}), got {len(metadata)}"
            raise InvalidIdentifierError(msg)
        check_ids(ids)  # ids first, as prepare_batch does: errors name the first problem
        encoded: list[str | None] = (
            [None] * len(ids)
            if metadata is None
            else [encode_metadata(item, row=row) for row, item in enumerate(metadata)]
        )
        batch = prepare_batch(ids, vectors, None, self.dimension)
        if len(batch.ids) != len(ids):  # repeated ids: keep the metadata of the rows kept
            last = {vector_id: row for row, vector_id in enumerate(ids)}
            encoded = [encoded[last[vector_id]] for vector_id in batch.ids]
        return batch, encoded

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
        await self._after_write(name, len(ids))

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
        batch, encoded = await self._prepared(namespace, ids, vectors, metadata)
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
            self._indexed.pop(table_name, None)
        size = loaded if loaded is not None else await self._count_table(table_name)
        self._rows[table_name] = size
        if build_index and size >= self.hnsw_min_rows:
            await self._build(table_name)
        elif not build_index:
            await self._after_write(table_name, 0)

    async def build_index(self, namespace: str) -> None:
        """Build the namespace's HNSW index now (``CREATE INDEX CONCURRENTLY``), if missing."""
        self._check_writable("build_index")
        check_namespace(namespace)
        async with self._pool.acquire() as connection:
            table_name = await self._table_name(connection, namespace)
        if table_name is not None:
            await self._build(table_name)

    async def _build(self, table_name: str) -> None:
        table = self._tables.table(table_name)
        index = self._tables.index_name(table_name)
        started = time.perf_counter()
        async with self._pool.acquire() as connection:
            # One builder per table across instances; others see the index when it is done.
            if not await connection.fetchval("SELECT pg_try_advisory_lock(hashtext($1))", table):
                return
            try:
                valid = await connection.fetchval(
                    "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                    "WHERE c.relname = $1 AND c.relnamespace = $2::regnamespace",
                    index,
                    self.schema,
                )
                if valid:
                    return
                if valid is not None:  # an interrupted CONCURRENTLY build left it invalid
                    await connection.execute(f"DROP INDEX {self._tables.table(index)}")
                # A graph that does not fit is built on disk, many times slower (100k x 384
                # needs about 200 MB); the pool's reset on release undoes this SET.
                memory = int(self.hnsw_build_memory_mb)
                await connection.execute(f"SET maintenance_work_mem = '{memory}MB'")
                await connection.execute(
                    f"CREATE INDEX CONCURRENTLY {index} ON {table} USING hnsw "
                    f"(embedding vector_ip_ops) WITH (m = {int(self.hnsw_m)}, "
                    f"ef_construction = {int(self.hnsw_ef_construction)})",
                    timeout=None,
                )
            finally:
                await connection.fetchval("SELECT pg_advisory_unlock(hashtext($1))", table)
        self._indexed.pop(table_name, None)
        log.info(
            "vectors.hnsw_built",
            table=table,
            duration_ms=round((time.perf_counter() - started) * 1000, 1),
        )

    async def _after_write(self, table: str, rows: int) -> None:
        """Start a background index build once the namespace may have reached the threshold.

        ``_rows`` is what the table held at this instance's last count plus what it wrote
        since (deletes are not subtracted: it errs high, so the count comes early); the
        table is counted again only when that reaches ``hnsw_min_rows``.
        """
        indexed, _ = self._indexed.get(table, (False, 0.0))
        if indexed or table in self._builds:
            return
        estimate = self._rows.get(table)
        if estimate is not None and estimate + rows < self.hnsw_min_rows:
            self._rows[table] = estimate + rows
            return
        self._rows[table] = count = await self._count_table(table)
        if count < self.hnsw_min_rows:
            return
        task = asyncio.get_running_loop().create_task(self._build(table))
        self._builds[table] = task
        task.add_done_callback(lambda done: self._build_done(table, done))

    def _build_done(self, table: str, task: asyncio.Task[None]) -> None:
        self._builds.pop(table, None)
        if not task.cancelled() and task.exception() is not None:
            log.error("vectors.hnsw_build_failed", table=table, error=repr(task.exception()))

    async def _count_table(self, table_name: str) -> int:
        async with self._pool.acquire() as connection:
            count: int = await connection.fetchval(
                f"SELECT count(*) FROM {self._tables.table(table_name)}"
            )
        return count

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

    async def _index_ready(self, connection: Connection, table_name: str) -> bool:
        known = self._indexed.get(table_name)
        now = time.monotonic()
        if known is not None and now - known[1] < INDEX_STATE_TTL_S:
            return known[0]
        valid = bool(
            await connection.fetchval(
                "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                "WHERE c.relname = $1 AND c.relnamespace = $2::regnamespace",
                self._tables.index_name(table_name),
                self.schema,
            )
        )
        self._indexed[table_name] = (valid, now)
        return valid

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
            indexed = await self._index_ready(connection, table_name)
            if clauses is None:
                if not indexed:
                    return _matches(await connection.fetch(sql.exact_sql(table, None, 2), unit, k))
                return await self._hnsw(connection, table, None, [], unit, k, self.ef_search)
            where, parameters = sql.filter_sql(clauses, 3)
            if not indexed:
                exact = sql.exact_sql(table, where, 2)
                return _matches(await connection.fetch(exact, unit, k, *parameters))
            return await self._filtered(connection, table, clauses, unit, k)

    async def _filtered(
        self,
        connection: Connection,
        table: str,
        clauses: list[Clause],
        unit: npt.NDArray[np.float32],
        k: int,
    ) -> list[VectorMatch]:
        """An indexed namespace, filtered: exact for few matches, through the index for many."""
        where, parameters = sql.filter_sql(clauses, 3)  # $1 the query, $2 k
        exact = sql.exact_sql(table, where, 2)
        key = (table, json.dumps(clauses, ensure_ascii=False))
        few = self._known_path(key)
        if few is None:
            counted, _ = sql.filter_sql(clauses, 2)  # $1 the cap
            count_sql = sql.bounded_count_sql(table, counted, 1)
            cap = self.exact_max_rows + 1
            few = await connection.fetchval(count_sql, cap, *parameters) <= self.exact_max_rows
            self._remember_path(key, few)
        if few:
            return _matches(await connection.fetch(exact, unit, k, *parameters))
        ef = max(self.filtered_ef_search, k)
        found = await self._hnsw(connection, table, where, parameters, unit, k, ef)
        if len(found) < k:  # the index's nearest rows held too few matches: rank them all
            self._remember_path(key, True)
            return _matches(await connection.fetch(exact, unit, k, *parameters))
        return found

    def _known_path(self, key: tuple[str, str]) -> bool | None:
        known = self._filter_paths.get(key)
        if known is None or time.monotonic() - known[1] > FILTER_PATH_TTL_S:
            return None
        return known[0]

    def _remember_path(self, key: tuple[str, str], few: bool) -> None:
        if len(self._filter_paths) >= FILTER_PATHS_MAX:
            self._filter_paths.clear()  # rare; every decision is cheap to make again
        self._filter_paths[key] = (few, time.monotonic())

    async def _hnsw(  # noqa: PLR0917
        self,
        connection: Connection,
        table: str,
        where: str | None,
        parameters: list[object],
        unit: npt.NDArray[np.float32],
        k: int,
        ef: int,
    ) -> list[VectorMatch]:
        ef = min(max(ef, k), 1000)  # pgvector's ef_search range is 1-1000
        query = sql.hnsw_sql(table, where, 2 + len(parameters) + 1, 2)
        # Unfiltered, the index's first k rows are the answer: fetch no more than those.
        candidates = k if where is None else ef
        if ef == self._session_ef_search:
            # The connection's own default (the container's pool starts its connections
            # with it; the pool's reset at release restores it): one statement.
            return _matches(await connection.fetch(query, unit, k, *parameters, candidates))
        # Two statements in one simple-protocol round trip open the transaction and set
        # ef_search for it alone; COMMIT (or ROLLBACK on error) ends it.
        await connection.execute(f"BEGIN READ ONLY; SET LOCAL hnsw.ef_search = {int(ef)}")
        try:
            rows = await connection.fetch(query, unit, k, *parameters, candidates)
        except BaseException:
            await connection.execute("ROLLBACK")
            raise
        await connection.execute("COMMIT")
        return _matches(rows)

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
