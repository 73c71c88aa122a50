"""The relay's and the projection runner's retry delay after a database error starts over
once Postgres answers again, also when the consumer was active (its loop never returns)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import pytest

from app.entities.projections import AgentGoalStats, ProjectionRunner
from app.entities.records import StoredEvent
from app.entities.relay import INITIAL_BACKOFF_S, Relay


class _Connection:
    """Answers the lock query; ``holds_lock`` False: another process has it (stand by);
    True: ours, and then the connection breaks on the next statement."""

    def __init__(self, *, holds_lock: bool) -> None:
        self._holds_lock = holds_lock

    async def fetchval(self, query: str, *args: object) -> object:
        if "pg_try_advisory_lock" in query:
            return self._holds_lock
        raise OSError("connection reset")

    async def execute(self, query: str, *args: object) -> str:
        raise OSError("connection reset")

    def is_closed(self) -> bool:
        return False

    def terminate(self) -> None:
        pass


class _FlakyPool:
    """Each acquire plays the next outcome: "down" raises, "standby" and "active" lend a
    connection (see ``_Connection``); the pool reports closing once the outcomes are spent."""

    def __init__(self, outcomes: list[str]) -> None:
        self._outcomes = outcomes

    def is_closing(self) -> bool:
        return not self._outcomes

    @asynccontextmanager
    async def acquire(self) -> AsyncIterator[_Connection]:
        outcome = self._outcomes.pop(0)
        if outcome == "down":
            raise OSError("connection refused")
        yield _Connection(holds_lock=outcome == "active")


class _NoSink:
    name = "none"

    async def publish(self, events: Sequence[StoredEvent]) -> None:
        raise AssertionError("a standby relay publishes nothing")


# Two failed connects, then one that takes the lock and breaks: the third delay is the
# first again, as Postgres had answered.
OUTCOMES = ["down", "down", "active", "standby"]
EXPECTED = [INITIAL_BACKOFF_S, 2 * INITIAL_BACKOFF_S, INITIAL_BACKOFF_S]


@pytest.fixture
def slept(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    delays: list[float] = []

    async def record(delay: float) -> None:
        delays.append(delay)

    monkeypatch.setattr(asyncio, "sleep", record)
    return delays


async def test_relay_retry_delay_starts_over_once_postgres_answers(slept: list[float]) -> None:
    relay = Relay(_FlakyPool(list(OUTCOMES)), _NoSink(), standby_retry_s=0.001)  # type: ignore[arg-type]
    await relay._run()
    assert slept == EXPECTED


async def test_projection_retry_delay_starts_over_once_postgres_answers(
    slept: list[float],
) -> None:
    runner = ProjectionRunner(
        _FlakyPool(list(OUTCOMES)),  # type: ignore[arg-type]
        AgentGoalStats(),
        standby_retry_s=0.001,
    )
    await runner._run()
    assert slept == EXPECTED
