"""What the parts of ``EntityStore`` share: the pool, the registry, the commit listeners, and
the boundary where driver errors become typed ones.

``EntityStore`` is put together from its single changes (``single_writes``), its batches
(``batch_writes``) and its reads (``reads``), each a class on top of ``StoreCore``. Each of
them takes its connection from ``_connection``: whatever asyncpg raises while it is held
(the acquire, the statements, a transaction's commit or rollback, the release) comes out as
an error of our tree, the driver's error as its ``__cause__``. A create naming an id that is
taken is an ``EntityExistsError``; everything else is what ``app.database.driver_errors``
makes of it (a lost connection: ``DatabaseConnectionError``; a closed pool:
``DatabaseNotConnectedError``). A write that fails writes nothing: a single change is one
statement, a batch one transaction.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Final
from uuid import UUID

import asyncpg

from app.database.driver_errors import DRIVER_ERRORS, translate
from app.entities.registry import EntityRegistry
from app.entities.sql import Connection
from app.errors import DataLayerError, EntityExistsError

__all__ = ["StoreCore", "store_error"]

# The key in Postgres's DETAIL of a unique violation on an entity table's primary key, "Key
# (id)=(<uuid>) already exists." (the words around it follow the server's lc_messages).
_TAKEN_ID: Final = re.compile(r"\(id\)=\(([0-9a-fA-F-]{36})\)")


def store_error(exc: BaseException, operation: str, registry: EntityRegistry) -> DataLayerError:
    """The typed error for driver error ``exc`` (raise it ``from exc``)."""
    if getattr(exc, "sqlstate", None) == "23505":
        table = getattr(exc, "table_name", None)
        taken = _TAKEN_ID.search(getattr(exc, "detail", None) or "")
        entity = next((e for e in registry if e.table == table), None)
        if entity is not None and taken is not None:
            return EntityExistsError(entity.name, UUID(taken.group(1)))
    return translate(exc, operation)


class StoreCore:
    """Entities of the registered types on an asyncpg pool."""

    def __init__(self, pool: asyncpg.Pool, registry: EntityRegistry) -> None:
        self._pool = pool
        self.registry = registry
        self._listeners: list[Callable[[], None]] = []

    def add_commit_listener(self, listener: Callable[[], None]) -> None:
        """Call ``listener()`` after every commit that recorded events."""
        self._listeners.append(listener)

    def remove_commit_listener(self, listener: Callable[[], None]) -> None:
        self._listeners.remove(listener)

    def _committed(self) -> None:
        for listener in self._listeners:
            listener()

    @asynccontextmanager
    async def _connection(self, operation: str) -> AsyncIterator[Connection]:
        """A connection of the pool for ``operation`` (``"create agent"``, named in errors);
        driver errors raised while it is held come out typed (``store_error``)."""
        try:
            async with self._pool.acquire() as conn:
                yield conn
        except DRIVER_ERRORS as exc:
            raise store_error(exc, operation, self.registry) from exc
