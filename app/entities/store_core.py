"""What the parts of ``EntityStore`` share: the pool, the registry and the commit listeners.

``EntityStore`` is put together from its single changes (``single_writes``), its batches
(``batch_writes``) and its reads (``reads``), each a class on top of ``StoreCore``.
"""

from __future__ import annotations

from collections.abc import Callable

import asyncpg

from app.entities.registry import EntityRegistry

__all__ = ["StoreCore"]


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
