"""The :class:`StateBackend` protocol: one behaviour, in memory or in Redis.

The numbered statements of section A in ``docs/contracts/state.md`` (S1-S4, K1-K7, R1-R9,
L1-L10, E1-E4, SS1) are the specification; ``tests/contract/test_state_contract.py``
checks every one of them against both implementations.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

__all__ = ["StateBackend", "Vector"]

Vector = Sequence[float] | np.ndarray[Any, Any]


@runtime_checkable
class StateBackend(Protocol):
    """Rate limits, leases, an embedding cache, sessions and plain values under one namespace.

    Durations (``ttl``, ``ttl_seconds``, ``window_seconds``) are seconds up to
    ``MAX_DURATION_SECONDS`` (2**53 ms), ``limit`` an int up to ``MAX_LIMIT`` (2**53 - 1) and
    ``amount`` a signed 64-bit int; anything else is a ``ValueError`` (``TypeError`` for a
    non-int amount) before anything is stored.
    """

    async def rate_limit_check(
        self, user_id: str, limit: int, window_seconds: float, *, scope: str = "default"
    ) -> tuple[bool, int]:
        """Sliding log: allow and record the call if fewer than ``limit`` were allowed in the
        trailing ``window_seconds``; return ``(allowed, remaining)``."""
        ...

    async def acquire_lock(
        self, key: str, ttl_seconds: float = 30, owner: str | None = None
    ) -> bool:
        """Take the lease on ``key`` for ``ttl_seconds`` if it is free; never blocks."""
        ...

    async def release_lock(self, key: str, owner: str | None = None) -> bool:
        """Release the lease if ``owner`` holds it; True iff it was released."""
        ...

    async def extend_lock(self, key: str, ttl_seconds: float, owner: str | None = None) -> bool:
        """Set the remaining lease to ``ttl_seconds`` if ``owner`` holds it."""
        ...

    async def cache_embedding(
        self, text_hash: str, vector: Vector, ttl: float | None = 3600
    ) -> None:
        """Store ``vector`` as little-endian float32 under ``text_hash``."""
        ...

    async def get_cached_embedding(self, text_hash: str) -> list[float] | None:
        """The cached vector (a new list), or None if missing, expired or corrupt."""
        ...

    async def set_session(
        self, session_id: str, data: dict[str, Any], ttl: float | None = None
    ) -> None:
        """Store a JSON object as the session's state, replacing value and TTL."""
        ...

    async def get_session(self, session_id: str, *, touch: bool = False) -> dict[str, Any] | None:
        """The session's state (a copy); ``touch=True`` renews its TTL."""
        ...

    async def delete_session(self, session_id: str) -> bool:
        """Remove the session; True iff a live one was removed."""
        ...

    async def set_value(self, key: str, value: Any, ttl: float | None = None) -> None:
        """Store a JSON-serialisable value, replacing value and TTL."""
        ...

    async def get_value(self, key: str) -> Any | None:
        """The stored value (a copy), or None if missing or expired."""
        ...

    async def delete(self, key: str) -> bool:
        """Remove a plain value; True iff a live key was removed."""
        ...

    async def increment(self, key: str, amount: int = 1, ttl: float | None = None) -> int:
        """Atomically add ``amount`` (a missing key starts at 0); return the new value."""
        ...

    async def ping(self) -> bool:
        """Check the store answers; True if it does."""
        ...

    async def close(self) -> None:
        """Refuse further calls (BackendClosedError); idempotent."""
        ...
