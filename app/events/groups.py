"""Consumer groups of the in-process buses: one shared stream per (group, patterns), per process.

With RabbitMQ a group key (B21: the group name and the pattern set, see
``Subscription.group_key``) names one durable queue; every subscription with that key, on
any bus in any process, consumes from it, so each event is handled once by one of them.
In one process the in-process buses do the same through one :class:`GroupTable` for the
whole process (``inprocess.PROCESS_GROUPS``) (as the broker is one for all RabbitMQ buses):

- a grouped subscription joins the :class:`SharedGroup` of its key (made by the first
  member, dropped with the last); its dispatcher stays its own bus's (stats, dead letters);
- a publish on *any* in-process bus feeds each group whose patterns match the type once, to
  one member: the least loaded (queued per unit of concurrency), taking turns among equals;
- a member that leaves (``unsubscribe``, ``close``) leaves the group first; what it still had
  queued, or a run cancelled by ``close``, goes back to the group for another member, as
  RabbitMQ requeues a cancelled consumer's unacked messages. With no member left it is
  dropped (counted), like any in-process delivery that never ran.

Across processes nothing is shared: that is RabbitMQ's alone. A bus that is never closed
keeps its members in the table, like an open consumer on a group queue.
"""

from __future__ import annotations

from typing import Final, Generic, TypeVar

from app.events.dispatch import Dispatcher
from app.events.subscription import GroupKey
from app.events.topics import TopicMatcher

__all__ = ["GroupTable", "SharedGroup"]

T = TypeVar("T")
_ROUTE_CACHE_SIZE: Final = 10_000


class SharedGroup(Generic[T]):
    """The members of one group key; each item fed goes to exactly one of them."""

    __slots__ = ("_turn", "key", "matcher", "members")

    def __init__(self, key: GroupKey) -> None:
        self.key = key
        self.matcher = TopicMatcher(key[1])
        self.members: list[Dispatcher[T]] = []
        self._turn = 0

    def pick(self) -> Dispatcher[T] | None:
        """The member to hand the next item: the least loaded, in turn among equals."""
        members = self.members
        count = len(members)
        if count <= 1:
            return members[0] if members else None
        start = self._turn % count
        self._turn += 1
        best: Dispatcher[T] | None = None
        best_load = float("inf")
        for offset in range(count):
            member = members[(start + offset) % count]
            load = member.pending / member.subscription.concurrency
            if load < best_load:
                best, best_load = member, load
                if load == 0:
                    break
        return best

    def __repr__(self) -> str:
        group, patterns = self.key
        return f"<SharedGroup {group!r} {list(patterns)} members={len(self.members)}>"


class GroupTable(Generic[T]):
    """Every group key with members in this process, and a cache: event type -> groups."""

    def __init__(self) -> None:
        self._groups: dict[GroupKey, SharedGroup[T]] = {}
        self.routes: dict[str, tuple[SharedGroup[T], ...]] = {}

    def __len__(self) -> int:
        return len(self._groups)

    def join(self, key: GroupKey, member: Dispatcher[T]) -> SharedGroup[T]:
        """Add ``member`` to the group of ``key`` (made if new) and return the group."""
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = SharedGroup(key)
            self.routes.clear()
        group.members.append(member)
        return group

    def leave(self, key: GroupKey, member: Dispatcher[T]) -> None:
        """Remove ``member``; the group goes with its last member. Unknown: nothing."""
        group = self._groups.get(key)
        if group is None or member not in group.members:
            return
        group.members.remove(member)
        if not group.members:
            del self._groups[key]
            self.routes.clear()

    def get(self, key: GroupKey) -> SharedGroup[T] | None:
        return self._groups.get(key)

    def route(self, event_type: str) -> tuple[SharedGroup[T], ...]:
        """The groups whose patterns match ``event_type`` (cached per type)."""
        routes = self.routes.get(event_type)
        if routes is None:
            routes = tuple(group for group in self._groups.values() if group.matcher(event_type))
            if len(self.routes) >= _ROUTE_CACHE_SIZE:
                self.routes.clear()
            self.routes[event_type] = routes
        return routes
