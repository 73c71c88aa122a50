"""InMemoryStateBackend details beyond the shared contract: clock, sweep, lifecycle, checks."""

from __future__ import annotations

import asyncio
import time

import pytest

from app.errors import BackendClosedError
from app.state import InMemoryStateBackend, StateBackend
from tests.contract.state_harness import FakeClock


async def test_implements_the_protocol() -> None:
    """The memory backend is a StateBackend at runtime too."""
    backend = InMemoryStateBackend()
    assert isinstance(backend, StateBackend)
    await backend.close()


async def test_default_clock_is_monotonic_and_an_injected_clock_drives_expiry() -> None:
    """Without a clock time.monotonic is used; an injected clock alone decides expiry."""
    assert InMemoryStateBackend()._clock is time.monotonic
    clock = FakeClock()
    backend = InMemoryStateBackend(clock=clock)
    await backend.set_value("k", 1, ttl=10)
    clock.now += 9.999
    assert await backend.get_value("k") == 1
    clock.now += 0.001
    assert await backend.get_value("k") is None


async def test_sweep_removes_expired_entries_and_idle_logs_and_counts_them() -> None:
    """sweep() drops expired values, sessions, embeddings, locks and idle rate logs only."""
    clock = FakeClock()
    backend = InMemoryStateBackend(clock=clock)
    await backend.set_value("v", 1, ttl=1)
    await backend.set_value("kept", 1)
    await backend.set_session("s", {}, ttl=1)
    await backend.cache_embedding("e", [1.0], ttl=1)
    assert await backend.acquire_lock("l", 1)
    assert await backend.rate_limit_check("u", 2, 1.0) == (True, 1)
    assert await backend.rate_limit_check("busy", 2, 5.0) == (True, 1)
    assert backend.sweep() == 0
    clock.now += 1.0
    assert backend.sweep() == 5
    assert backend.stats() == {
        "values": 1,
        "sessions": 0,
        "embeddings": 0,
        "locks": 0,
        "rate_limit_logs": 1,
        "rate_limit_stamps": 1,
    }
    assert await backend.get_value("kept") == 1


async def test_start_runs_the_sweep_periodically_and_close_stops_it() -> None:
    """start(interval) sweeps in the background; close() cancels the task."""
    clock = FakeClock()
    backend = InMemoryStateBackend(clock=clock)
    await backend.set_value("v", 1, ttl=1)
    await backend.start(0.01)
    clock.now += 2
    for _ in range(100):
        if backend.stats()["values"] == 0:
            break
        await asyncio.sleep(0.01)
    assert backend.stats()["values"] == 0
    sweeper = backend._sweeper
    assert sweeper is not None
    await backend.close()
    assert sweeper.cancelled()


async def test_start_without_interval_creates_no_task_and_start_twice_fails() -> None:
    """start(None) runs no sweep task; a second start() raises RuntimeError."""
    backend = InMemoryStateBackend()
    await backend.start(None)
    assert backend._sweeper is None
    with pytest.raises(RuntimeError, match="already called"):
        await backend.start(None)
    await backend.close()


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), float("inf"), "30"])
async def test_start_rejects_a_bad_interval(bad: object) -> None:
    """start() needs a finite positive sweep_interval_s or None."""
    backend = InMemoryStateBackend()
    with pytest.raises(ValueError, match="sweep_interval_s must be a finite number > 0 and <= "):
        await backend.start(bad)  # type: ignore[arg-type]
    assert backend._sweeper is None
    await backend.start(None)  # the failed start did not count
    await backend.close()


async def test_close_clears_state_and_refuses_sweep_and_start() -> None:
    """After close() the data is gone and sweep() / start() raise BackendClosedError."""
    backend = InMemoryStateBackend()
    await backend.set_value("k", 1)
    await backend.close()
    assert backend.stats()["values"] == 0
    with pytest.raises(BackendClosedError):
        backend.sweep()
    with pytest.raises(BackendClosedError):
        await backend.start()


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"namespace": ""}, ValueError, "namespace must be a non-empty str"),
        ({"max_value_bytes": 0}, ValueError, "max_value_bytes must be an int > 0, got int 0"),
        ({"max_value_bytes": 1.5}, ValueError, "max_value_bytes must be an int > 0"),
        ({"clock": 3.0}, TypeError, "clock must be a callable"),
    ],
)
def test_constructor_validates_its_arguments(
    kwargs: dict[str, object], error: type[Exception], message: str
) -> None:
    """Bad constructor arguments fail at once with a message naming the argument."""
    with pytest.raises(error, match=message):
        InMemoryStateBackend(**kwargs)  # type: ignore[arg-type]


async def test_a_custom_max_value_bytes_applies_to_every_kind_of_value() -> None:
    """max_value_bytes bounds values, sessions and embeddings alike."""
    backend = InMemoryStateBackend(max_value_bytes=16)
    await backend.set_value("k", "x" * 14)
    with pytest.raises(ValueError, match="max_value_bytes=16"):
        await backend.set_value("k", "x" * 15)
    with pytest.raises(ValueError, match="max_value_bytes=16"):
        await backend.set_session("s", {"a": "x" * 20})
    with pytest.raises(ValueError, match="max_value_bytes=16"):
        await backend.cache_embedding("e", [1.0] * 4)
    assert await backend.get_value("k") == "x" * 14
    await backend.close()
