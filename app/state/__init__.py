"""State backends: rate limits, leases, an embedding cache, sessions and values.

``InMemoryStateBackend`` (one node) and ``RedisStateBackend`` (many replicas) implement the
same :class:`StateBackend` protocol, checked by one contract suite (CONTRACTS.md section A).
"""

from __future__ import annotations

from app.errors import StateBackendError, StateBackendUnavailableError
from app.state.memory import InMemoryStateBackend
from app.state.protocol import StateBackend, Vector
from app.state.redis import RedisStateBackend

__all__ = [
    "InMemoryStateBackend",
    "RedisStateBackend",
    "StateBackend",
    "StateBackendError",
    "StateBackendUnavailableError",
    "Vector",
]
