"""``Deadlines``: the one-timer task watchdog both buses use for their timeouts."""

from __future__ import annotations

import asyncio

from app.events.deadlines import Deadlines


async def _watched(deadlines: Deadlines, timeout_s: float, work_s: float) -> str:
    task = asyncio.current_task()
    assert task is not None
    deadline = deadlines.watch(task)
    deadlines.start(deadline, timeout_s)
    try:
        await asyncio.sleep(work_s)
    except asyncio.CancelledError:
        if deadline.withdraw():
            return "expired"
        raise
    finally:
        deadline.at = 0.0
        deadlines.unwatch(deadline)
    return "expired-late" if deadline.withdraw() else "finished"


async def test_overrunning_tasks_are_cancelled_and_others_are_not() -> None:
    """Tasks past their deadlines (a later one started first) are cancelled; others are not."""
    deadlines = Deadlines()
    results = await asyncio.gather(
        _watched(deadlines, 0.2, 5),
        _watched(deadlines, 5.0, 0.01),
        _watched(deadlines, 0.05, 5),
    )
    assert list(results) == ["expired", "finished", "expired"]


async def test_an_expired_task_can_go_on_after_withdraw() -> None:
    """withdraw() takes back the cancel request, so the task keeps running normally."""
    deadlines = Deadlines()
    assert await _watched(deadlines, 0.02, 5) == "expired"
    current = asyncio.current_task()
    assert current is not None
    assert current.cancelling() == 0
    await asyncio.sleep(0.01)  # would raise CancelledError if a request were left over


async def test_a_real_cancel_is_not_mistaken_for_a_deadline() -> None:
    """Cancelling a watched task from outside propagates; it is not reported as expired."""
    deadlines = Deadlines()
    task = asyncio.create_task(_watched(deadlines, 5, 5))
    await asyncio.sleep(0.01)
    task.cancel()
    await asyncio.wait([task])
    assert task.cancelled()


async def test_a_reused_deadline_only_fires_for_the_current_operation() -> None:
    """A deadline restarted for each run (as a worker does) never cancels a quick run."""
    deadlines = Deadlines()
    current = asyncio.current_task()
    assert current is not None
    deadline = deadlines.watch(current)
    for _ in range(5):
        deadlines.start(deadline, 0.2)
        await asyncio.sleep(0.01)
        deadline.at = 0.0
    await asyncio.sleep(0.3)  # past the first run's deadline: the timer fired and did nothing
    assert deadlines.timer_when == float("inf")
    assert deadline.withdraw() is False


async def test_close_stops_the_timer() -> None:
    """After close() nothing is cancelled any more."""
    deadlines = Deadlines()
    current = asyncio.current_task()
    assert current is not None
    deadline = deadlines.watch(current)
    deadlines.start(deadline, 0.01)
    deadlines.close()
    await asyncio.sleep(0.05)
    assert deadline.withdraw() is False
