"""``Deadlines``: cancel tasks that overrun, with one timer instead of one per operation.

``asyncio.timeout`` costs about 6 us per use here (a timer handle pushed and cancelled
per call); the in-process bus handles a whole event in about that. Instead each
watched operation has a reusable :class:`Deadline` (an attribute write to start, one to
stop) and the :class:`Deadlines` keeps one timer, armed for the earliest deadline only
when none is armed earlier, and re-armed when it fires. Both buses use it: the
dispatcher for ``handler_timeout_s`` (one ``Deadline`` per worker), the RabbitMQ bus for
``publish_timeout_s`` (one per publish).

Use::

    deadline = deadlines.watch(task)
    deadline.at = at = loop.time() + timeout_s
    if at < deadlines.timer_when:
        deadlines.arm(at)
    ...  # await the operation
    deadline.at = 0.0
    if deadline.expired and deadline.withdraw():  # cancelled for its deadline
        ...
"""

from __future__ import annotations

import asyncio
import math

__all__ = ["Deadline", "Deadlines"]


class Deadline:
    """The deadline of one task's current operation: ``at`` (loop time, 0 when none)."""

    __slots__ = ("at", "expired", "task")

    def __init__(self, task: asyncio.Task[object]) -> None:
        self.task = task
        self.at = 0.0
        self.expired = False

    def withdraw(self) -> bool:
        """If the task was cancelled for this deadline: withdraw that cancel request
        (``uncancel``) so the caller can raise its own error, and return True."""
        if not self.expired:
            return False
        self.expired = False
        self.task.uncancel()
        return True


class Deadlines:
    """Watches ``Deadline`` objects with one timer; cancels the task of an overdue one."""

    __slots__ = ("_timer", "_watched", "timer_when")

    def __init__(self) -> None:
        self._watched: set[Deadline] = set()
        self._timer: asyncio.TimerHandle | None = None
        self.timer_when = math.inf  # when the armed timer fires (inf: none armed)

    def watch(self, task: asyncio.Task[object]) -> Deadline:
        deadline = Deadline(task)
        self._watched.add(deadline)
        return deadline

    def unwatch(self, deadline: Deadline) -> None:
        self._watched.discard(deadline)

    def start(self, deadline: Deadline, timeout_s: float) -> None:
        """``deadline.at = now + timeout_s`` and make sure the timer covers it."""
        deadline.at = at = deadline.task.get_loop().time() + timeout_s
        if at < self.timer_when:
            self.arm(at)

    def arm(self, at: float) -> None:
        """Have the timer fire at ``at`` (called when it would fire later or not at all)."""
        if self._timer is not None:
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_at(at, self._fire)
        self.timer_when = at

    def close(self) -> None:
        """Stop the timer and forget every deadline (nothing is cancelled any more)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.timer_when = math.inf
        self._watched.clear()

    def _fire(self) -> None:
        self._timer = None
        self.timer_when = math.inf
        if not self._watched:
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        earliest = math.inf
        for deadline in list(self._watched):
            at = deadline.at
            if not at:
                continue
            if at <= now:
                deadline.at = 0.0
                deadline.expired = True
                deadline.task.cancel()
            elif at < earliest:
                earliest = at
        if earliest != math.inf:
            self._timer = loop.call_at(earliest, self._fire)
            self.timer_when = earliest
