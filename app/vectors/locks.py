"""One ``asyncio.Lock`` per namespace, and a way to hold all of them at once.

Every read or write of a namespace runs under its lock, so a query never sees a batch
half applied. ``save()``, ``load()`` and ``close()`` need a consistent view of every
namespace: :meth:`NamespaceLocks.exclusive` takes every lock, including those of
namespaces created while it was acquiring, and holds them until the block ends. A lock
created while the block runs (a new namespace) is free: the holder lists what it works
on (``save()`` lists the stores, each of which has its lock) on the event loop, before
it awaits anything, so a namespace created later is simply not part of its view.
Operations hold one namespace lock at a time and exclusive holders are serialised, so
there is no lock-order cycle.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

__all__ = ["NamespaceLocks"]


class NamespaceLocks:
    """Locks created on first use; never removed (one small object per namespace name)."""

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._exclusive_gate = asyncio.Lock()

    def __call__(self, namespace: str) -> asyncio.Lock:
        """The lock of ``namespace`` (created on first use)."""
        lock = self._locks.get(namespace)
        if lock is None:
            lock = self._locks[namespace] = asyncio.Lock()
        return lock

    @asynccontextmanager
    async def exclusive(self) -> AsyncIterator[None]:
        """Hold every namespace lock, including those created while acquiring."""
        async with self._exclusive_gate:
            held: dict[str, asyncio.Lock] = {}
            try:
                while missing := sorted(set(self._locks) - set(held)):
                    for name in missing:
                        lock = self._locks[name]
                        await lock.acquire()
                        held[name] = lock
                yield
            finally:
                for lock in reversed(held.values()):
                    lock.release()
