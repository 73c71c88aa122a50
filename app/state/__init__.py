"""State backends: rate limits, leases, an embedding cache, sessions and values.

``InMemoryStateBackend`` (one node) and ``RedisStateBackend`` (many replicas) implement the
same :class:`StateBackend` protocol, checked by one contract suite (section A,
docs/contracts/state.md).
Both refuse durations over :data:`MAX_DURATION_SECONDS` and rate limits over :data:`MAX_LIMIT`
(``ValueError``), the most Redis represents exactly.
"""

from __future__ import annotations

from app.errors import (
    StateArgumentError,
    StateArgumentTypeError,
    StateBackendError,
    StateBackendUnavailableError,
)
from app.state.memory import InMemoryStateBackend
from app.state.protocol import StateBackend, Vector
from app.state.redis import RedisStateBackend
from app.state.validation import MAX_DURATION_SECONDS, MAX_LIMIT

__all__ = [
    "MAX_DURATION_SECONDS",
    "MAX_LIMIT",
    "InMemoryStateBackend",
    "RedisStateBackend",
    "StateArgumentError",
    "StateArgumentTypeError",
    "StateBackend",
    "StateBackendError",
    "StateBackendUnavailableError",
    "Vector",
]
