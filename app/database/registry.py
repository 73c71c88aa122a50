"""The registry of database backends, and ``create_database_client``.

A backend is a factory ``(settings, logger, pool) -> DatabaseClient``: ``pool`` is the
container's asyncpg pool when the container builds the client (a Postgres backend must run on
it), None for a client that opens its own at ``connect()``. ``postgres`` is registered at
import; ``DATABASE__BACKEND`` picks one by name.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import asyncpg
import structlog

from app.database.client import PostgreSQLClient
from app.errors import BackendAlreadyRegisteredError, ConfigurationError
from settings import MigrateMode, Settings

__all__ = [
    "BackendFactory",
    "DatabaseClient",
    "create_database_client",
    "get_backend",
    "is_backend_registered",
    "list_backends",
    "register_backend",
    "unregister_backend",
]

log = structlog.get_logger(__name__)


@runtime_checkable
class DatabaseClient(Protocol):
    """What a registered backend's client offers: the original design's client API."""

    @property
    def backend(self) -> str: ...

    async def connect(self) -> None: ...
    async def disconnect(self) -> None: ...
    async def close(self) -> None: ...
    async def ping(self) -> None: ...
    async def health_check(self) -> dict[str, Any]: ...
    async def run_migrations(
        self, extra_dirs: Iterable[Path | str] = (), *, dry_run: bool = False
    ) -> list[Any]: ...
    async def initialize_schema(self, schema_path: str | Path) -> None: ...
    async def execute(self, query: str, parameters: Any = None) -> str: ...
    async def execute_many(self, query: str, parameters_list: Sequence[Any]) -> None: ...
    async def execute_script(self, script: str) -> None: ...
    async def insert(self, table: str, data: Mapping[str, Any]) -> Any: ...
    async def update(
        self, table: str, data: Mapping[str, Any], where_clause: str, where_params: Any = None
    ) -> int: ...
    async def fetch_one(self, query: str, parameters: Any = None) -> dict[str, Any] | None: ...
    async def fetch_all(self, query: str, parameters: Any = None) -> list[dict[str, Any]]: ...
    def transaction(self) -> AbstractAsyncContextManager[Any]: ...
    async def get_table_stats(self, table_name: str) -> dict[str, Any]: ...
    async def get_all_tables_stats(self) -> list[dict[str, Any]]: ...
    async def vacuum_analyze(self, table_name: str | None = None) -> None: ...


BackendFactory = Callable[[Settings, Any, "asyncpg.Pool | None"], DatabaseClient]

_backends: dict[str, BackendFactory] = {}


def register_backend(name: str, factory: BackendFactory, *, replace: bool = False) -> None:
    """Register ``factory`` under ``name``; a taken name raises unless ``replace=True``."""
    if not isinstance(name, str) or not name:
        raise ConfigurationError(f"a backend name is a non-empty str, got {name!r}")
    if not callable(factory):
        raise ConfigurationError(f"backend {name!r}: the factory must be callable, got {factory!r}")
    if name in _backends and not replace:
        raise BackendAlreadyRegisteredError(
            f"database backend {name!r} is already registered; pass replace=True to replace it"
        )
    _backends[name] = factory


def unregister_backend(name: str) -> bool:
    """Remove ``name``; True if it was registered."""
    return _backends.pop(name, None) is not None


def list_backends() -> list[str]:
    """The registered names, sorted."""
    return sorted(_backends)


def is_backend_registered(name: str) -> bool:
    return name in _backends


def get_backend(name: str) -> BackendFactory:
    """The factory for ``name``; an unknown name is a ``ConfigurationError`` listing the known."""
    try:
        return _backends[name]
    except KeyError:
        known = ", ".join(list_backends()) or "(none)"
        raise ConfigurationError(
            f"DATABASE__BACKEND={name!r} is not a registered database backend; "
            f"registered: {known} (register yours with app.database.register_backend)"
        ) from None


def postgres_backend(settings: Settings, logger: Any, pool: asyncpg.Pool | None) -> DatabaseClient:
    """``PostgreSQLClient`` on the given pool, or on the pool ``settings`` describe."""
    options: dict[str, Any] = {"logger": logger, "copy_min_rows": settings.database.copy_min_rows}
    if pool is not None:
        return PostgreSQLClient(pool=pool, **options)
    return PostgreSQLClient(settings=settings, **options)


async def create_database_client(
    settings: Settings,
    logger: Any = None,
    auto_init_schema: bool = True,
    *,
    pool: asyncpg.Pool | None = None,
) -> DatabaseClient:
    """A connected client of the ``DATABASE__BACKEND`` backend; the caller closes it.

    With ``auto_init_schema`` and ``POSTGRES__MIGRATE=auto`` the pending migrations (the
    product's, then ``POSTGRES__MIGRATION_DIRS``') are applied before it is returned.
    """
    factory = get_backend(settings.database.backend)
    client = factory(settings, logger, pool)
    await client.connect()
    try:
        if auto_init_schema and settings.postgres.migrate is MigrateMode.AUTO:
            await client.run_migrations(settings.postgres.migration_dirs)
    except BaseException:
        await client.close()
        raise
    (logger or log).info("database.client_ready", backend=settings.database.backend)
    return client


register_backend("postgres", postgres_backend)
