"""What ``PgVectorStore`` needs of its server: the extension, the codec, a schema, tables.

Capabilities come from the installed pgvector version (``pgserver`` bundles 0.6.2): HNSW
indexes exist from 0.5.0, ``halfvec`` from 0.7.0, iterative index scans from 0.8.0, and a
``vector`` column can be indexed up to 2,000 dimensions in every version so far. Only
what the installed version has is ever used; a server without pgvector, or a dimension it
cannot index, fails the start with :class:`VectorStoreUnavailableError`.

Layout (created on first use, idempotently, under a transaction-level advisory lock, so
that instances starting together do not race)::

    <schema>.namespaces       name (the namespace) -> table_name, dimension
    <schema>.v_<n>            one table per namespace: id text COLLATE "C" primary key,
                              embedding vector(d), metadata jsonb (GIN, jsonb_path_ops),
                              and, from VECTORS__HNSW_MIN_ROWS rows, v_<n>_hnsw

Table names come from a sequence, never from the namespace, so any valid namespace is a
safe identifier and two names never share a table; ``COLLATE "C"`` orders ids by code
point, as Python orders ``str`` (ties are settled by id on both stores).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, TypeAlias

import asyncpg
from pgvector.asyncpg import register_vector

from app.errors import ConfigurationError, VectorStoreUnavailableError

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    # A pool's connection proxy or a plain connection: both run the same statements.
    Connection: TypeAlias = asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]

__all__ = [
    "MAX_INDEXED_DIMENSIONS",
    "SCHEMA_PATTERN",
    "Capabilities",
    "Tables",
    "capabilities",
    "ensure_extension",
    "init_connection",
    "quoted",
]

MAX_INDEXED_DIMENSIONS: Final = 2000  # an HNSW or IVFFlat index on `vector`, 0.5.0 - 0.8.x
SCHEMA_PATTERN: Final = re.compile(r"[a-z_][a-z0-9_]{0,62}")
WAY_OUT: Final = (
    "install pgvector >= 0.5.0 in that server (https://github.com/pgvector/pgvector) and "
    "CREATE EXTENSION vector, or set VECTORS__BACKEND=faiss"
)


def quoted(identifier: str) -> str:
    """A double-quoted SQL identifier (every name we build is checked, this is defence)."""
    return '"' + identifier.replace('"', '""') + '"'


@dataclass(frozen=True)
class Capabilities:
    """What the installed pgvector can do."""

    version: str
    schema: str  # where the extension's types live

    @property
    def version_tuple(self) -> tuple[int, ...]:
        return tuple(int(part) for part in re.findall(r"\d+", self.version)[:3])

    @property
    def hnsw(self) -> bool:
        return self.version_tuple >= (0, 5, 0)

    @property
    def halfvec(self) -> bool:
        return self.version_tuple >= (0, 7, 0)

    @property
    def iterative_scans(self) -> bool:
        return self.version_tuple >= (0, 8, 0)

    @property
    def max_indexed_dimensions(self) -> int:
        return MAX_INDEXED_DIMENSIONS


async def init_connection(connection: asyncpg.Connection[Any]) -> None:
    """Register pgvector's binary codec on a new pool connection (``create_pool(init=...)``).

    A server without the extension yet gets none: ``PgVectorStore`` creates the extension,
    then expires the pool's connections, whose replacements come back through here.
    """
    schema = await connection.fetchval(
        "SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'vector'"
    )
    if schema is not None:
        await register_vector(connection, schema=schema)


async def capabilities(connection: Connection) -> Capabilities | None:
    """The installed pgvector, or ``None`` when the extension is not created in this database."""
    row = await connection.fetchrow(
        "SELECT extversion, extnamespace::regnamespace::text AS schema "
        "FROM pg_extension WHERE extname = 'vector'"
    )
    return None if row is None else Capabilities(row["extversion"], row["schema"])


async def ensure_extension(
    connection: Connection, address: str, dimension: int, *, create: bool = True
) -> tuple[Capabilities, bool]:
    """The extension's capabilities, creating it when the server has it available (and
    ``create``: a read-only store only checks).

    Returns ``(capabilities, created_now)``. Raises :class:`VectorStoreUnavailableError`
    naming ``address``, the version found and the way out when pgvector is missing, cannot
    be created here, is too old for HNSW, or cannot index ``dimension``.
    """
    found = await capabilities(connection)
    created = False
    if found is None:
        available = await connection.fetchval(
            "SELECT default_version FROM pg_available_extensions WHERE name = 'vector'"
        )
        if available is None or not create:
            server = await connection.fetchval("SHOW server_version")
            msg = (
                f"vector store: Postgres {server} at {address} has no pgvector extension "
                f"(found version: none; available to create: {available or 'none'}); {WAY_OUT}"
            )
            raise VectorStoreUnavailableError(msg)
        try:
            await connection.execute("CREATE EXTENSION IF NOT EXISTS vector")
        except asyncpg.PostgresError as exc:
            msg = (
                f"vector store: pgvector {available} is available at {address} but could not "
                f"be created in this database ({type(exc).__name__}: {exc}); {WAY_OUT}"
            )
            raise VectorStoreUnavailableError(msg) from exc
        found = await capabilities(connection)
        created = True
        assert found is not None  # just created
    if not found.hnsw:
        msg = (
            f"vector store: pgvector {found.version} at {address} has no HNSW index "
            f"(0.5.0 or later needed); {WAY_OUT}"
        )
        raise VectorStoreUnavailableError(msg)
    if dimension > found.max_indexed_dimensions:
        msg = (
            f"vector store: FAISS__DIMENSION={dimension}, but pgvector {found.version} at "
            f"{address} indexes at most {found.max_indexed_dimensions} dimensions; use "
            f"vectors of at most {found.max_indexed_dimensions} dimensions, or set "
            "VECTORS__BACKEND=faiss"
        )
        raise VectorStoreUnavailableError(msg)
    return found, created


class Tables:
    """The registry of namespaces and the DDL of their tables, in one schema."""

    def __init__(self, schema: str, dimension: int) -> None:
        if SCHEMA_PATTERN.fullmatch(schema) is None:
            msg = f"VECTORS__SCHEMA must match [a-z_][a-z0-9_]{{0,62}}, got {schema!r}"
            raise ConfigurationError(msg)
        self.schema = schema
        self.dimension = dimension
        self.registry = f"{quoted(schema)}.namespaces"
        self._lock_key = f"datalayer.vectors:{schema}"

    def table(self, table_name: str) -> str:
        return f"{quoted(self.schema)}.{quoted(table_name)}"

    def index_name(self, table_name: str) -> str:
        return f"{table_name}_hnsw"

    async def create_registry(self, connection: Connection) -> None:
        """Schema, registry table and the sequence of table numbers (idempotent)."""
        async with connection.transaction():
            await connection.execute("SELECT pg_advisory_xact_lock(hashtext($1))", self._lock_key)
            await connection.execute(
                f"""
                CREATE SCHEMA IF NOT EXISTS {quoted(self.schema)};
                CREATE SEQUENCE IF NOT EXISTS {quoted(self.schema)}.table_numbers;
                CREATE TABLE IF NOT EXISTS {self.registry} (
                    name text COLLATE "C" PRIMARY KEY,
                    table_name text NOT NULL UNIQUE,
                    dimension integer NOT NULL,
                    created_at timestamptz NOT NULL DEFAULT now()
                )
                """
            )

    async def exists(self, connection: Connection) -> bool:
        """Whether the registry has been created (a read-only store never creates it)."""
        found = await connection.fetchval("SELECT to_regclass($1)", self.registry)
        return found is not None

    async def mismatched_dimensions(self, connection: Connection) -> list[Any]:
        """Namespaces stored with another dimension than the configured one."""
        return list(
            await connection.fetch(
                f"SELECT name, dimension FROM {self.registry} WHERE dimension <> $1 ORDER BY name",
                self.dimension,
            )
        )

    async def lookup(self, connection: Connection, namespace: str) -> str | None:
        try:
            table: str | None = await connection.fetchval(
                f"SELECT table_name FROM {self.registry} WHERE name = $1", namespace
            )
        except asyncpg.UndefinedTableError:  # no registry yet (a read-only store's view)
            return None
        return table

    async def create(self, connection: Connection, namespace: str) -> str:
        """The namespace's table, made (with its registry row) if it does not exist yet."""
        async with connection.transaction():
            await connection.execute("SELECT pg_advisory_xact_lock(hashtext($1))", self._lock_key)
            existing = await self.lookup(connection, namespace)
            if existing is not None:
                return existing
            number = await connection.fetchval(
                f"SELECT nextval('{quoted(self.schema)}.table_numbers')"
            )
            table_name = f"v_{number}"
            table = self.table(table_name)
            await connection.execute(
                f"""
                CREATE TABLE {table} (
                    id text COLLATE "C" PRIMARY KEY,
                    embedding vector({self.dimension}) NOT NULL,
                    metadata jsonb
                );
                CREATE INDEX {quoted(table_name + "_metadata")} ON {table}
                    USING gin (metadata jsonb_path_ops)
                """
            )
            await connection.execute(
                f"INSERT INTO {self.registry} (name, table_name, dimension) VALUES ($1, $2, $3)",
                namespace,
                table_name,
                self.dimension,
            )
            return table_name

    async def all(self, connection: Connection) -> list[tuple[str, str]]:
        try:
            rows = await connection.fetch(
                f"SELECT name, table_name FROM {self.registry} ORDER BY name"
            )
        except asyncpg.UndefinedTableError:  # no registry yet (a read-only store's view)
            return []
        return [(row["name"], row["table_name"]) for row in rows]
