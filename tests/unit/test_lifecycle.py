"""The lifecycle: ordered, concurrent start; rollback; reverse stop with timeouts and all errors."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest
from dependency_injector import providers
from structlog.testing import capture_logs

from app.errors import NotStartedError, ResourceStartError, ResourceStopError, UnitGraphError
from containers import Lifecycle, check_readiness
from containers.readiness import ping_all
from tests.fakes.resources import Journal, fake_unit


async def test_independent_units_start_concurrently() -> None:
    """Two units without dependencies are both starting before either has finished."""
    journal = Journal()
    units = [fake_unit(journal, n, start_delay_s=0.05) for n in ("a", "b")]
    async with Lifecycle(units):
        assert journal.entries[:2] == [("start", "a"), ("start", "b")]
    assert sorted(journal.names("stopped")) == ["a", "b"]


async def test_unit_starts_only_after_its_dependencies() -> None:
    """A dependent unit's start begins after each of its dependencies has started."""
    journal = Journal()
    units = [
        fake_unit(journal, "app", depends_on=("db", "cache")),
        fake_unit(journal, "db", start_delay_s=0.03),
        fake_unit(journal, "cache", start_delay_s=0.01),
    ]
    async with Lifecycle(units) as lifecycle:
        order = journal.entries
        assert order.index(("start", "app")) > order.index(("started", "db"))
        assert order.index(("start", "app")) > order.index(("started", "cache"))
        assert lifecycle.started == ("cache", "db", "app")


async def test_stop_runs_in_reverse_start_order() -> None:
    """Units stop in the reverse of the order they finished starting."""
    journal = Journal()
    units = [
        fake_unit(journal, "db"),
        fake_unit(journal, "state", depends_on=("db",)),
        fake_unit(journal, "web", depends_on=("state",)),
    ]
    async with Lifecycle(units):
        pass
    assert journal.names("stop") == ["web", "state", "db"]


async def test_failed_start_rolls_back_and_names_the_backend() -> None:
    """A failing unit stops everything already started and raises one error naming it."""
    journal = Journal()
    units = [
        fake_unit(journal, "db"),
        fake_unit(journal, "slow", start_delay_s=0.05),
        fake_unit(journal, "broker", fail_start=ConnectionRefusedError("port 5672 refused")),
    ]
    lifecycle = Lifecycle(units)
    with pytest.raises(ResourceStartError) as caught:
        await lifecycle.start()
    message = str(caught.value)
    assert "broker" in message
    assert "fake://user:***@broker" in message
    assert "ConnectionRefusedError: port 5672 refused" in message
    assert isinstance(caught.value.cause, ConnectionRefusedError)
    assert lifecycle.started == ()
    started = set(journal.names("started"))
    assert set(journal.names("stopped")) == started
    assert "db" in started


async def test_a_failed_start_does_not_start_dependents() -> None:
    """A unit whose dependency failed is never started."""
    journal = Journal()
    units = [
        fake_unit(journal, "db", fail_start=OSError("disk full")),
        fake_unit(journal, "app", depends_on=("db",)),
    ]
    with pytest.raises(ResourceStartError, match="db"):
        await Lifecycle(units).start()
    assert "app" not in journal.names("start")


async def test_start_timeout_is_a_start_failure() -> None:
    """A unit that does not start within its timeout fails the start like any error."""
    journal = Journal()
    hung = fake_unit(journal, "hung", start_delay_s=10)
    hung = type(hung)(**{**hung.__dict__, "start_timeout_s": 0.05})
    with pytest.raises(ResourceStartError, match=r"hung.*TimeoutError"):
        await Lifecycle([fake_unit(journal, "ok"), hung]).start()
    assert journal.names("stopped") == ["ok"]


async def test_stop_continues_past_failures_and_raises_them_all() -> None:
    """Every teardown runs even when some fail; all failures come back in one group, whose
    message names the backends that failed (what `serve` prints before exiting 3)."""
    journal = Journal()
    units = [
        fake_unit(journal, "a", fail_stop=RuntimeError("a broke")),
        fake_unit(journal, "b", depends_on=("a",)),
        fake_unit(journal, "c", depends_on=("b",), fail_stop=ValueError("c broke")),
    ]
    lifecycle = Lifecycle(units)
    await lifecycle.start()
    with pytest.raises(ResourceStopError) as caught:
        await lifecycle.stop()
    assert [str(e) for e in caught.value.exceptions] == ["c broke", "a broke"]
    assert caught.value.message == "2 resource(s) failed to stop: c, a"
    assert isinstance(caught.value, ExceptionGroup)
    assert journal.names("stop") == ["c", "b", "a"]
    assert journal.names("stopped") == ["b"]


async def test_each_stop_has_its_own_timeout() -> None:
    """A hung teardown times out alone; the units after it still stop."""
    journal = Journal()
    units = [
        fake_unit(journal, "db"),
        fake_unit(journal, "hung", depends_on=("db",), stop_delay_s=10, stop_timeout_s=0.05),
    ]
    lifecycle = Lifecycle(units)
    await lifecycle.start()
    with pytest.raises(ResourceStopError) as caught:
        await lifecycle.stop()
    (error,) = caught.value.exceptions
    assert isinstance(error, TimeoutError)
    assert "hung did not stop within 0.05 s" in str(error)
    assert journal.names("stopped") == ["db"]


async def test_start_and_stop_are_idempotent() -> None:
    """A second start or stop does nothing."""
    journal = Journal()
    lifecycle = Lifecycle([fake_unit(journal, "a")])
    await lifecycle.start()
    await lifecycle.start()
    await lifecycle.stop()
    await lifecycle.stop()
    assert journal.names("start") == ["a"]
    assert journal.names("stop") == ["a"]


async def test_cancelled_start_stops_what_started() -> None:
    """Cancelling start() half-way stops the units that were already up."""
    journal = Journal()
    units = [fake_unit(journal, "fast"), fake_unit(journal, "slow", start_delay_s=10)]
    lifecycle = Lifecycle(units)
    task = asyncio.create_task(lifecycle.start())
    for _ in range(1000):  # loop turns, not a fixed sleep: on as soon as "fast" is up
        if "fast" in lifecycle.started:
            break
        await asyncio.sleep(0)
    assert journal.names("started") == ["fast"]
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert journal.names("stopped") == ["fast"]
    assert lifecycle.started == ()


class CancelledAsItComesUp:
    """A Resource provider whose start is cancelled just after its resource came up: the
    moment a sibling's failure (or a start timeout) cancels the units still starting."""

    def __init__(self, inner: providers.Resource[str]) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)

    async def _init(self) -> str:
        initialised = self._inner.init()
        assert initialised is not None
        value: str = await initialised
        task = asyncio.current_task()
        assert task is not None
        task.cancel()
        await asyncio.sleep(0)  # the cancellation lands on this await
        return value

    def init(self) -> object:
        return self._init()


async def test_a_unit_up_when_its_start_is_cancelled_is_stopped() -> None:
    """A resource that came up while its start was being cancelled is stopped, not leaked."""
    journal = Journal()
    racing = fake_unit(journal, "racing")
    units = [
        fake_unit(journal, "db"),
        replace(racing, provider=CancelledAsItComesUp(racing.provider)),
    ]
    lifecycle = Lifecycle(units)
    with pytest.raises(asyncio.CancelledError):
        await lifecycle.start()
    assert sorted(journal.names("started")) == ["db", "racing"]
    assert sorted(journal.names("stopped")) == ["db", "racing"]
    assert not racing.provider.initialized
    assert lifecycle.started == ()


async def test_started_and_stopped_are_logged_with_duration() -> None:
    """Each unit logs resources.started and resources.stopped with a duration in ms."""
    journal = Journal()
    with capture_logs() as logs:
        async with Lifecycle([fake_unit(journal, "a")]):
            pass
    events = {(entry["event"], entry["resource"]): entry for entry in logs}
    assert events[("resources.started", "a")]["duration_ms"] >= 0
    assert events[("resources.stopped", "a")]["duration_ms"] >= 0


async def test_value_before_start_is_a_clear_error() -> None:
    """Asking for a unit's value before it started raises NotStartedError."""
    lifecycle = Lifecycle([fake_unit(Journal(), "a")])
    with pytest.raises(NotStartedError, match="'a' is not started"):
        lifecycle.value("a")


def test_unknown_dependency_and_cycles_are_rejected() -> None:
    """Units that depend on an unknown unit, or on each other in a cycle, are refused at once."""
    journal = Journal()
    with pytest.raises(UnitGraphError, match="unknown units"):
        Lifecycle([fake_unit(journal, "a", depends_on=("ghost",))])
    with pytest.raises(UnitGraphError, match="cycle: a -> b -> a"):
        Lifecycle(
            [
                fake_unit(journal, "a", depends_on=("b",)),
                fake_unit(journal, "b", depends_on=("a",)),
            ]
        )


async def test_readiness_pings_every_started_unit() -> None:
    """Readiness reports ok per unit while running, and an error per unit after stop."""
    journal = Journal()
    lifecycle = Lifecycle([fake_unit(journal, "a"), fake_unit(journal, "b")])
    async with lifecycle:
        results = await check_readiness(lifecycle)
        assert {name: r.status for name, r in results.items()} == {"a": "ok", "b": "ok"}
        assert all(r.latency_ms >= 0 for r in results.values())
    after = await check_readiness(lifecycle)
    assert after["a"].status == "error"
    assert "not started" in (after["a"].error or "")


async def test_started_providers_hand_out_the_object_itself() -> None:
    """After start a unit's provider (and its aliases) return the object, not a Future."""
    unit = fake_unit(Journal(), "a")
    alias = providers.Selector(providers.Object("x"), x=unit.provider)
    unit = type(unit)(**{**unit.__dict__, "aliases": (alias,)})
    lifecycle = Lifecycle([unit])
    async with lifecycle:
        assert unit.provider() == "value-of-a"
        assert alias() == "value-of-a"
    assert not unit.provider.initialized
    assert unit.provider.is_async_mode_undefined()


async def test_pings_stop_when_the_caller_is_cancelled() -> None:
    """A readiness check cancelled by its caller (a client gone) leaves no ping running."""
    pinging = asyncio.Event()
    ended: list[str] = []

    async def hung() -> None:
        pinging.set()
        try:
            await asyncio.sleep(60)
        finally:
            ended.append("hung")

    caller = asyncio.create_task(ping_all({"db": hung}, timeout_s=30))
    await pinging.wait()
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    await asyncio.sleep(0)
    assert ended == ["hung"]


async def test_external_units_are_resolved_and_pinged_never_started_or_stopped() -> None:
    """An external unit (an overridden provider) hands out its override and is pinged with
    the others; its own resource is never started and nothing is stopped for it."""
    journal = Journal()
    real = fake_unit(journal, "cache")
    real.provider.override(providers.Object("value-of-cache"))
    lifecycle = Lifecycle([fake_unit(journal, "db")], external=[real], disabled={"search": ""})
    async with lifecycle:
        assert lifecycle.value("cache") == "value-of-cache"
        results = await check_readiness(lifecycle)
        assert {name: r.status for name, r in results.items()} == {
            "db": "ok",
            "cache": "ok",
            "search": "disabled",
        }
    assert journal.names("start") == ["db"]
    assert journal.names("stop") == ["db"]
    with pytest.raises(NotStartedError):
        lifecycle.value("cache")


async def test_an_external_unit_that_cannot_be_resolved_fails_the_start() -> None:
    """An override that raises when resolved is a start failure naming it, and what started
    is stopped again."""
    journal = Journal()
    broken = fake_unit(journal, "cache")

    def refuse() -> str:
        raise ConnectionRefusedError("no cache here")

    broken.provider.override(providers.Callable(refuse))
    lifecycle = Lifecycle([fake_unit(journal, "db")], external=[broken])
    with pytest.raises(ResourceStartError, match="cache failed to start"):
        await lifecycle.start()
    assert journal.names("stopped") == ["db"]
    assert not lifecycle.running
