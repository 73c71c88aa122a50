"""``InMemorySessionStore``: sessions in ordered dicts, each operation atomic on the event loop.

Sessions are kept in order of last activity (a touch moves one to the end; times only grow),
so the least recently active live session is the first live one, and idle ones form a prefix.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from app.data.sessions.models import StoredSession
from app.data.sessions.store import CreateResult

__all__ = ["InMemorySessionStore"]


@dataclass(slots=True)
class _Entry:
    user_id: str
    created_us: int
    last_us: int
    fields: dict[str, str]


def _idle_prefix(order: OrderedDict[str, None], entries: dict[str, _Entry], cutoff: int) -> int:
    """How many sessions at the front of ``order`` are idle (last activity <= cutoff)."""
    count = 0
    for session_id in order:
        if entries[session_id].last_us > cutoff:
            break
        count += 1
    return count


class InMemorySessionStore:
    """Sessions for one process. ``clock`` returns seconds since the epoch (for tests)."""

    def __init__(self, *, clock: Callable[[], float] | None = None) -> None:
        self._clock = clock or time.time
        self._last_us = 0
        self._entries: dict[str, _Entry] = {}
        self._order: OrderedDict[str, None] = OrderedDict()
        self._by_user: dict[str, OrderedDict[str, None]] = {}

    def _now(self) -> int:
        now = max(int(self._clock() * 1_000_000), self._last_us + 1)
        self._last_us = now
        return now

    def _stored(self, session_id: str, entry: _Entry) -> StoredSession:
        return StoredSession(
            session_id, entry.user_id, entry.created_us, entry.last_us, dict(entry.fields)
        )

    def _remove(self, session_id: str) -> _Entry | None:
        entry = self._entries.pop(session_id, None)
        if entry is None:
            return None
        self._order.pop(session_id, None)
        user = self._by_user.get(entry.user_id)
        if user is not None:
            user.pop(session_id, None)
            if not user:
                del self._by_user[entry.user_id]
        return entry

    def _make_room(
        self, order: OrderedDict[str, None], cap: int, cutoff: int, evicted: list[str]
    ) -> None:
        """Evict the least recently active live sessions of ``order`` below ``cap``."""
        live = len(order) - _idle_prefix(order, self._entries, cutoff)
        while live >= cap:
            victim = next(sid for sid in order if self._entries[sid].last_us > cutoff)
            self._remove(victim)
            evicted.append(victim)
            live -= 1

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
        now = self._now()
        cutoff = now - timeout_us
        user_order = self._by_user.get(user_id, OrderedDict())
        user_live = len(user_order) - _idle_prefix(user_order, self._entries, cutoff)
        global_live = len(self._order) - _idle_prefix(self._order, self._entries, cutoff)
        if reject:
            if max_per_user is not None and user_live >= max_per_user:
                return CreateResult(None, refused_by="user")
            if global_live >= max_sessions:
                return CreateResult(None, refused_by="global")
        evicted: list[str] = []
        if max_per_user is not None:
            self._make_room(user_order, max_per_user, cutoff, evicted)
        self._make_room(self._order, max_sessions, cutoff, evicted)
        entry = _Entry(user_id, now, now, dict(fields))
        self._remove(session_id)  # a 192-bit id never repeats; this only keeps indexes exact
        self._entries[session_id] = entry
        self._order[session_id] = None
        self._by_user.setdefault(user_id, OrderedDict())[session_id] = None
        return CreateResult(self._stored(session_id, entry), tuple(evicted))

    async def touch(
        self, session_id: str, changes: dict[str, str], *, timeout_us: int
    ) -> StoredSession | None:
        now = self._now()
        entry = self._entries.get(session_id)
        if entry is None or entry.last_us <= now - timeout_us:
            return None
        entry.fields.update(changes)
        entry.last_us = now
        self._order.move_to_end(session_id)
        self._by_user[entry.user_id].move_to_end(session_id)
        return self._stored(session_id, entry)

    async def peek(self, session_id: str, *, timeout_us: int) -> StoredSession | None:
        entry = self._entries.get(session_id)
        if entry is None or entry.last_us <= self._now() - timeout_us:
            return None
        return self._stored(session_id, entry)

    async def delete(self, session_id: str, *, timeout_us: int) -> bool:
        now = self._now()
        entry = self._remove(session_id)
        return entry is not None and entry.last_us > now - timeout_us

    async def list_user(self, user_id: str, *, timeout_us: int) -> list[StoredSession]:
        cutoff = self._now() - timeout_us
        order = self._by_user.get(user_id, OrderedDict())
        return [
            self._stored(sid, self._entries[sid])
            for sid in reversed(order)
            if self._entries[sid].last_us > cutoff
        ]

    async def cleanup(self, *, timeout_us: int) -> int:
        cutoff = self._now() - timeout_us
        count = _idle_prefix(self._order, self._entries, cutoff)
        idle = [sid for sid, _ in zip(self._order, range(count), strict=False)]
        for session_id in idle:
            self._remove(session_id)
        return len(idle)

    async def ping(self) -> bool:
        return True
