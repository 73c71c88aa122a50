"""The ``SessionStore`` protocol: what the manager needs of memory and Redis, atomically.

Time is microseconds since the epoch, made strictly increasing by the store (each operation
takes ``max(clock, last + 1)``), so "least recently active" is always one session. A session
is live while ``now - last_activity < timeout``; an idle one reads as missing at once but stays
indexed until :meth:`SessionStore.cleanup` removes it (so both stores count removals alike).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from app.data.sessions.models import StoredSession

__all__ = ["CreateResult", "SessionStore"]


@dataclass(frozen=True, slots=True)
class CreateResult:
    """A created session, the ids evicted to make room, or the cap that refused it."""

    session: StoredSession | None
    evicted: tuple[str, ...] = ()
    refused_by: str | None = None  # "user" or "global" under policy "reject"


class SessionStore(Protocol):
    """Every method is one atomic step (one Lua script on Redis, no await in memory)."""

    async def create(
        self,
        session_id: str,
        user_id: str,
        fields: dict[str, str],
        *,
        timeout_us: int,
        max_sessions: int,
        max_per_user: int | None,
        reject: bool,
    ) -> CreateResult:
        """Make room (evict or refuse), then store the session as just active."""
        ...

    async def touch(
        self, session_id: str, changes: dict[str, str], *, timeout_us: int
    ) -> StoredSession | None:
        """If live: merge ``changes``, mark active now, renew the expiry; else None."""
        ...

    async def peek(self, session_id: str, *, timeout_us: int) -> StoredSession | None:
        """The live session without touching it (no change to its activity or expiry)."""
        ...

    async def delete(self, session_id: str, *, timeout_us: int) -> bool:
        """Remove the session and its index entries; True iff it was live."""
        ...

    async def list_user(self, user_id: str, *, timeout_us: int) -> list[StoredSession]:
        """The user's live sessions, most recently active first."""
        ...

    async def cleanup(self, *, timeout_us: int) -> int:
        """Remove every idle session still indexed; how many were removed."""
        ...

    async def ping(self) -> bool:
        """True if the store answers."""
        ...
