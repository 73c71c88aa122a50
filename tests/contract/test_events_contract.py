"""Section B of docs/contracts/events.md: one suite, on the in-process bus and real RabbitMQ."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from app.errors import BusClosedError, EventSerializationError, EventTooLargeError
from app.events import DataEvent, HandlerTimeoutError, InProcessEventBus
from app.events.codec import encode
from tests.contract.events_support import BusFactory, BusKind, Recorder, event

pytestmark = pytest.mark.timeout(30)


@pytest.fixture(params=["inprocess", "rabbitmq"])
async def buses(request: pytest.FixtureRequest, unique_name: str) -> AsyncIterator[BusFactory]:
    """A factory of started buses of one kind, closed and cleaned up after the test."""
    kind: BusKind = request.param
    url = request.getfixturevalue("rabbitmq_url") if kind == "rabbitmq" else None
    factory = BusFactory(kind, url=url, exchange=unique_name)
    yield factory
    await factory.aclose()


@pytest.fixture
async def bus(buses: BusFactory) -> Any:
    """One started bus of the parametrised kind."""
    return await buses.make()


# -- event model ---------------------------------------------------------------------


async def test_b1_event_is_frozen_with_generated_id_copied_payload_and_utc_time(bus: Any) -> None:
    """B1: frozen, generated UUID, payload copied, aware UTC timestamp, all reaching the handler."""
    source = {"name": "ada", "tags": ["x"]}
    local = timezone(timedelta(hours=2))
    original = DataEvent(
        "user.created", "user", "7", source, "svc", datetime(2026, 1, 1, 12, tzinfo=local), 3
    )
    source["name"] = "changed"
    source["tags"].append("y")  # type: ignore[attr-defined]
    with pytest.raises(dataclasses.FrozenInstanceError):
        original.type = "other"  # type: ignore[misc]
    with pytest.raises(ValueError, match="timezone-aware"):
        DataEvent("a", "r", "k", {}, timestamp=datetime(2026, 1, 1))
    assert original.payload == {"name": "ada", "tags": ["x"]}
    assert original.timestamp == datetime(2026, 1, 1, 10, tzinfo=UTC)
    assert original.timestamp.tzinfo is UTC
    assert isinstance(original.id, uuid.UUID)
    assert original.id.version == 4
    assert original.id != DataEvent("a", "r", "k").id
    recorder = Recorder()
    await bus.subscribe("user.created", recorder)
    await bus.publish(original)
    await bus.drain(10, fail_fast=True)
    (received,) = recorder.events
    assert (received.id, received.version, received.timestamp) == (
        original.id,
        3,
        original.timestamp,
    )
    assert received.timestamp.tzinfo is not None


async def test_b2_handlers_get_an_equal_copy_and_unserialisable_payload_is_rejected(
    bus: Any,
) -> None:
    """B2: handlers get an equal, not identical event; bad payload -> EventSerializationError."""
    recorder = Recorder()
    await bus.subscribe("doc.*", recorder)
    sent = DataEvent("doc.saved", "doc", "1", {"n": 1, "nested": {"list": [1, 2.5, "é", None]}})
    await bus.publish(sent)
    for bad in ({"when": datetime.now(UTC)}, {"x": object()}, {"nan": float("nan")}):
        with pytest.raises(EventSerializationError, match="payload"):
            await bus.publish(DataEvent("doc.saved", "doc", "1", bad))
    await bus.drain(10, fail_fast=True)
    (received,) = recorder.events
    assert received == sent
    assert received is not sent
    assert received.payload is not sent.payload
    assert bus.stats.published == 1


@pytest.mark.parametrize(
    "bad_type",
    [
        *("", "a..b", ".a", "a.", "a.*", "#", "a.#.b", "x*", "x" * 256, "é" * 128),
        *("order\ndata: {}\n\nevent: admin", "a\rb", "a.b\x00"),
    ],
)
async def test_b3_malformed_type_raises_value_error_at_publish(bus: Any, bad_type: str) -> None:
    """B3: a type not of dot-separated words (no *, #, control chars, <= 255 bytes): ValueError."""
    with pytest.raises(ValueError, match="event type"):
        await bus.publish(DataEvent(bad_type, "r", "k"))
    assert bus.stats.published == 0


async def test_b4_oversized_event_raises_event_too_large(buses: BusFactory) -> None:
    """B4: an event encoding over max_event_bytes raises EventTooLargeError; one at it passes."""
    bus = await buses.make(max_event_bytes=2048)
    probe = event(blob="")
    overhead = len(encode(probe, 10**6).body)
    fits = DataEvent(
        probe.type, probe.resource, probe.key, {"blob": "x" * (2048 - overhead)}, probe.source
    )
    await bus.publish(fits)
    too_big = DataEvent(
        probe.type, probe.resource, probe.key, {"blob": "x" * (2049 - overhead)}, probe.source
    )
    with pytest.raises(EventTooLargeError, match="max_event_bytes=2048"):
        await bus.publish(too_big)
    assert bus.stats.published == 1


# -- routing -------------------------------------------------------------------------


async def test_b5_patterns_route_by_topic_rules(bus: Any) -> None:
    """B5: * is one word, # zero or more, through the bus (every vector: tests/unit/test_topics)."""
    patterns = ["foo.*", "foo.#", "a.b.#", "a.*.#", "#.c", "a.#.d", "*.b", "a.*", "ünï.*"]
    recorders = {pattern: Recorder() for pattern in patterns}
    for pattern, recorder in recorders.items():
        await bus.subscribe(pattern, recorder)
    sent = ["foo.bar", "foo.bar.baz.qux", "a.b", "c", "a.d", "b", "a", "ünï.cödé"]
    for event_type in sent:
        await bus.publish(event(event_type))
    await bus.drain(10, fail_fast=True)
    got = {pattern: sorted(recorder.types) for pattern, recorder in recorders.items()}
    assert got == {
        "foo.*": ["foo.bar"],
        "foo.#": ["foo.bar", "foo.bar.baz.qux"],
        "a.b.#": ["a.b"],
        "a.*.#": ["a.b", "a.d"],
        "#.c": ["c"],
        "a.#.d": ["a.d"],
        "*.b": ["a.b"],
        "a.*": ["a.b", "a.d"],
        "ünï.*": ["ünï.cödé"],
    }


async def test_b6_subscribe_all_is_subscribe_hash(bus: Any) -> None:
    """B6: subscribe_all(h) receives every event type, like subscribe("#", h)."""
    everything = Recorder()
    handle = bus.subscribe_all(everything)
    await handle
    assert handle.patterns == ("#",)
    for event_type in ("a", "b.c", "d.e.f"):
        await bus.publish(event(event_type))
    await bus.drain(10, fail_fast=True)
    assert sorted(everything.types) == ["a", "b.c", "d.e.f"]


async def test_b7_one_delivery_per_subscription_and_duplicate_subscriptions_count_twice(
    bus: Any,
) -> None:
    """B7: one delivery per subscription however many patterns match; a handler twice gets two."""
    multi = Recorder()
    twice = Recorder()
    await bus.subscribe(["a.*", "a.#", "#"], multi)
    await bus.subscribe("a.b", twice)
    await bus.subscribe("a.b", twice)
    await bus.publish(event("a.b"))
    await bus.drain(10, fail_fast=True)
    assert multi.types == ["a.b"]
    assert twice.types == ["a.b", "a.b"]


async def test_b8_publish_without_subscription_is_counted_unrouted(bus: Any) -> None:
    """B8: publishing with no matching subscription succeeds and counts as unrouted."""
    recorder = Recorder()
    await bus.subscribe("other.*", recorder)
    await bus.publish(event("nobody.listens"))
    await bus.drain(10, fail_fast=True)
    assert bus.stats.published == 1
    assert bus.stats.unrouted == 1
    assert recorder.events == []


# -- dispatch and failure ------------------------------------------------------------


async def test_b9_publish_never_runs_handlers_inline_nor_raises_their_errors(bus: Any) -> None:
    """B9: handlers run in another task; publish hides their errors; drain(fail_fast) does."""
    tasks: list[asyncio.Task[Any] | None] = []

    async def failing(received: DataEvent) -> None:
        tasks.append(asyncio.current_task())
        raise LookupError("handler broke")

    await bus.subscribe("x.y", failing, max_attempts=1)
    await bus.publish(event("x.y"))
    with pytest.raises(LookupError, match="handler broke"):
        await bus.drain(10, fail_fast=True)
    assert tasks
    assert tasks[0] is not asyncio.current_task()
    await bus.publish(event("x.y"))
    await bus.drain(10)  # without fail_fast the error is not raised
    assert len(tasks) == 2


async def test_b10_a_failing_handler_does_not_affect_others_or_later_events(bus: Any) -> None:
    """B10: if handler A raises, B still gets the event and A still gets later events."""
    a_calls: list[int] = []
    other = Recorder()

    async def handler_a(received: DataEvent) -> None:
        a_calls.append(received.payload["n"])
        if received.payload["n"] == 0:
            raise RuntimeError("first event fails")

    await bus.subscribe("iso.*", handler_a, max_attempts=1)
    await bus.subscribe("iso.*", other)
    await bus.publish(event("iso.x", n=0))
    await bus.publish(event("iso.x", n=1))
    await bus.drain(10)
    assert a_calls == [0, 1]
    assert [received.payload["n"] for received in other.events] == [0, 1]


async def test_b11_failing_delivery_is_retried_with_backoff_then_dead_lettered(
    buses: BusFactory,
) -> None:
    """B11: a failing delivery runs max_attempts times with growing pauses, then dead-letters."""
    bus = await buses.make(retry_backoff_s=0.05)
    attempts: list[float] = []
    flaky_runs: list[int] = []

    async def always_fails(received: DataEvent) -> None:
        attempts.append(time.monotonic())
        raise RuntimeError("poison")

    async def flaky(received: DataEvent) -> None:
        flaky_runs.append(1)
        if len(flaky_runs) < 3:
            raise RuntimeError("transient")

    await bus.subscribe("poison.*", always_fails, max_attempts=3)
    await bus.subscribe("flaky.*", flaky, max_attempts=3)
    poison = event("poison.pill")
    await bus.publish(poison)
    await bus.publish(event("flaky.once"))
    await bus.drain(10)
    assert len(attempts) == 3
    gaps = [later - earlier for earlier, later in itertools.pairwise(attempts)]
    assert gaps[0] >= 0.04  # 0.05 s, then 0.1 s: no hot loop
    assert gaps[1] >= 0.09
    assert len(flaky_runs) == 3
    assert await buses.dead_letter_ids(bus) == [str(poison.id)]
    assert bus.stats.dead_lettered == 1


class HandlerAbort(BaseException):
    """A BaseException that is not an Exception, like pytest's fail/skip outcomes."""


@pytest.mark.parametrize(
    "abort",
    [
        HandlerAbort("abort"),
        BaseExceptionGroup("several", [HandlerAbort("inner"), ValueError("also")]),
    ],
    ids=["base-exception", "base-exception-group"],
)
async def test_b10_b11_a_base_exception_is_a_failed_attempt(
    buses: BusFactory, abort: BaseException
) -> None:
    """B10/B11: a handler raising a non-Exception BaseException is retried, then dead-lettered,
    and its subscription keeps getting later events."""
    bus = await buses.make()
    runs: list[int] = []

    async def aborts_on_first(received: DataEvent) -> None:
        runs.append(received.payload["n"])
        if received.payload["n"] == 1:
            raise abort

    await bus.subscribe("abort.*", aborts_on_first, max_attempts=2)
    poisoned = event("abort.x", n=1)
    await bus.publish(poisoned)
    for n in (2, 3):
        await bus.publish(event("abort.x", n=n))
    await bus.drain(10)
    assert runs == [1, 1, 2, 3]
    assert bus.stats.failed_attempts == 2
    assert bus.stats.delivered == 2
    assert await buses.dead_letter_ids(bus) == [str(poisoned.id)]


async def test_b12_close_mid_handler_means_redelivery_with_rabbitmq(buses: BusFactory) -> None:
    """B12: a run cut off by close is not acked: RabbitMQ redelivers; in-process counts a drop."""
    first = await buses.make()
    started = asyncio.Event()

    async def hangs(received: DataEvent) -> None:
        started.set()
        await asyncio.sleep(60)

    await first.subscribe("job.run", hangs, group="workers")
    sent = event("job.run")
    await first.publish(sent)
    await asyncio.wait_for(started.wait(), 10)
    await first.close(timeout=0.05)
    if buses.kind == "inprocess":
        assert first.stats.dropped == 1
        return
    second = await buses.make()
    redelivered = Recorder()
    await second.subscribe("job.run", redelivered, group="workers")
    await second.drain(10, fail_fast=True)
    assert [received.id for received in redelivered.events] == [sent.id]


async def test_b13_retries_carry_the_same_event_id(bus: Any) -> None:
    """B13: every delivery attempt of one event has the same id (the dedupe key); events differ."""
    seen: list[uuid.UUID] = []

    async def fails_first(received: DataEvent) -> None:
        seen.append(received.id)
        if len(seen) == 1:
            raise RuntimeError("try again")

    await bus.subscribe("dup.*", fails_first)
    sent = [event("dup.x"), event("dup.x")]
    for item in sent:
        await bus.publish(item)
    await bus.drain(10)
    assert seen == [sent[0].id, sent[0].id, sent[1].id]


async def test_b14_concurrency_one_keeps_publish_order(bus: Any) -> None:
    """B14: with concurrency=1 a subscription sees one publisher's events in publish order."""
    order: list[int] = []

    async def record(received: DataEvent) -> None:
        order.append(received.payload["n"])
        if received.payload["n"] % 7 == 0:
            await asyncio.sleep(0.001)

    await bus.subscribe("seq.*", record)
    for n in range(60):
        await bus.publish(event("seq.n", n=n))
    await bus.drain(10, fail_fast=True)
    assert order == list(range(60))


async def test_b15_concurrency_bounds_simultaneous_runs(bus: Any) -> None:
    """B15: concurrency 3 with 10 slow events has at most 3 runs in flight, and reaches 3."""
    running = 0
    peak = 0

    async def slow(received: DataEvent) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.05)
        running -= 1

    await bus.subscribe("slow.*", slow, concurrency=3)
    for n in range(10):
        await bus.publish(event("slow.x", n=n))
    await bus.drain(10, fail_fast=True)
    assert peak == 3
    assert bus.stats.delivered == 10


async def test_b16_handler_exceeding_timeout_counts_as_failed(buses: BusFactory) -> None:
    """B16: a run over handler_timeout_s fails (HandlerTimeoutError), retries, dead-letters."""
    bus = await buses.make(handler_timeout_s=0.1)
    runs: list[int] = []

    async def too_slow(received: DataEvent) -> None:
        runs.append(1)
        await asyncio.sleep(5)

    await bus.subscribe("slow.op", too_slow, max_attempts=2)
    sent = event("slow.op")
    await bus.publish(sent)
    with pytest.raises(HandlerTimeoutError, match=r"handler_timeout_s=0\.1"):
        await bus.drain(10, fail_fast=True)
    await bus.drain(10)
    assert len(runs) == 2
    assert await buses.dead_letter_ids(bus) == [str(sent.id)]


# -- lifecycle -----------------------------------------------------------------------


async def test_b17_unsubscribe_semantics(bus: Any) -> None:
    """B17: True then False; no new run after; in-flight run completes; works inside handler."""
    recorder = Recorder()
    bus.subscribe("un.sub", recorder)
    assert bus.unsubscribe("un.sub", recorder) is True
    assert bus.unsubscribe("un.sub", recorder) is False

    finished: list[int] = []
    entered = asyncio.Event()
    release = asyncio.Event()

    async def in_flight(received: DataEvent) -> None:
        entered.set()
        await release.wait()
        finished.append(received.payload["n"])

    handle = bus.subscribe("un.flight", in_flight)
    await handle
    await bus.publish(event("un.flight", n=1))
    await bus.publish(event("un.flight", n=2))
    await asyncio.wait_for(entered.wait(), 10)
    assert bus.unsubscribe(handle) is True
    release.set()

    self_calls: list[int] = []
    self_unsubscribed: list[bool] = []  # checked after drain: the bus would swallow an assert

    async def leaves(received: DataEvent) -> None:
        self_calls.append(received.payload["n"])
        self_unsubscribed.append(bus.unsubscribe("un.self", leaves))

    await bus.subscribe("un.self", leaves)
    await bus.publish(event("un.self", n=1))
    await bus.publish(event("un.self", n=2))
    await bus.drain(10)
    await asyncio.sleep(0.1)  # a wrongly started run would show up here
    assert finished == [1]
    assert self_calls == [1]
    assert self_unsubscribed == [True]
    assert recorder.events == []


async def test_b18_new_subscription_gets_only_events_after_it_is_live(bus: Any) -> None:
    """B18: a subscription made during dispatch receives only events published after it is live."""
    late = Recorder()
    subscribed = asyncio.Event()

    async def subscribes_late(received: DataEvent) -> None:
        if received.payload["n"] == 2 and not subscribed.is_set():
            await bus.subscribe("live.*", late)
            subscribed.set()

    await bus.subscribe("live.*", subscribes_late)
    for n in range(3):
        await bus.publish(event("live.x", n=n))
    await asyncio.wait_for(subscribed.wait(), 10)
    await bus.drain(10, fail_fast=True)
    for n in range(3, 5):
        await bus.publish(event("live.x", n=n))
    await bus.drain(10, fail_fast=True)
    assert [received.payload["n"] for received in late.events] == [3, 4]


async def test_b19_publish_from_inside_a_handler(bus: Any) -> None:
    """B19: a handler can publish; the follow-up event is delivered."""
    followups = Recorder()

    async def relay(received: DataEvent) -> None:
        await bus.publish(event("chain.second", n=received.payload["n"]))

    await bus.subscribe("chain.first", relay)
    await bus.subscribe("chain.second", followups)
    for n in range(3):
        await bus.publish(event("chain.first", n=n))
    await bus.drain(10, fail_fast=True)
    await bus.drain(10, fail_fast=True)
    assert sorted(received.payload["n"] for received in followups.events) == [0, 1, 2]


async def test_b20_close_refuses_publishes_waits_then_cancels_and_is_idempotent(bus: Any) -> None:
    """B20: close waits up to its timeout, cancels runs, is idempotent; then BusClosedError."""
    entered = asyncio.Event()
    outcome: list[str] = []

    async def hangs(received: DataEvent) -> None:
        entered.set()
        try:
            await asyncio.sleep(30)
            outcome.append("finished")
        except asyncio.CancelledError:
            outcome.append("cancelled")
            raise

    await bus.subscribe("close.x", hangs)
    await bus.publish(event("close.x"))
    await asyncio.wait_for(entered.wait(), 10)
    started = time.monotonic()
    await bus.close(timeout=0.2)
    elapsed = time.monotonic() - started
    assert 0.15 <= elapsed < 5
    assert outcome == ["cancelled"]
    await bus.close(timeout=0.2)
    with pytest.raises(BusClosedError, match="closed"):
        await bus.publish(event("close.x"))


async def test_b21_group_shares_events_across_instances_none_broadcasts(buses: BusFactory) -> None:
    """B21: a group is shared by bus instances of one process (each event handled once, by
    one of them, on both buses); group=None reaches every subscription of the bus."""
    first, second = await buses.make(), await buses.make()
    grouped = [Recorder(), Recorder()]
    broadcast = [Recorder(), Recorder()]
    for instance, group_recorder, all_recorder in zip(
        (first, second), grouped, broadcast, strict=True
    ):
        await instance.subscribe("grp.*", group_recorder, group="indexers")
        await instance.subscribe("grp.*", all_recorder)
    sent = [event("grp.x", n=n) for n in range(20)]
    for item in sent:
        await first.publish(item)
    await drain_all(first, second)
    group_ids = sorted(str(e.id) for recorder in grouped for e in recorder.events)
    assert group_ids == sorted(str(item.id) for item in sent)  # each exactly once
    assert all(recorder.events for recorder in grouped)  # shared between the instances
    if isinstance(first, InProcessEventBus):
        # Without a group an in-process bus delivers only what was published on it.
        assert [len(recorder.events) for recorder in broadcast] == [20, 0]
    else:
        assert [len(recorder.events) for recorder in broadcast] == [20, 20]


async def test_b21_handlers_of_one_bus_with_the_same_group_and_patterns_share(bus: Any) -> None:
    """B21: two handlers with the same (group, patterns) on one bus split the events, each
    handled once; the patterns are a set (order and repeats do not make another group)."""
    recorders = [Recorder(), Recorder()]
    await bus.subscribe(["job.a", "job.b"], recorders[0], group="workers")
    await bus.subscribe(["job.b", "job.a", "job.a"], recorders[1], group="workers")
    sent = [event("job.a" if n % 2 else "job.b", n=n) for n in range(20)]
    for item in sent:
        await bus.publish(item)
    await drain_all(bus)
    handled = sorted(str(e.id) for recorder in recorders for e in recorder.events)
    assert handled == sorted(str(item.id) for item in sent)
    assert all(recorder.events for recorder in recorders)


async def test_b21_same_group_with_other_patterns_never_shares(buses: BusFactory) -> None:
    """B21: the same group name with different patterns are different groups: neither gets
    the other's events, and a wider pattern gets its own copy of every event it matches."""
    first, second = await buses.make(), await buses.make()
    only_a, only_b, wide = Recorder(), Recorder(), Recorder()
    await first.subscribe("pay.a", only_a, group="billing")
    await second.subscribe("pay.b", only_b, group="billing")
    await second.subscribe("pay.*", wide, group="billing")
    sent = [event("pay.a", n=n) for n in range(3)] + [event("pay.b", n=n) for n in range(2)]
    for item in sent:
        await first.publish(item)
    await drain_all(first, second)
    assert only_a.types == ["pay.a"] * 3
    assert only_b.types == ["pay.b"] * 2
    assert sorted(str(e.id) for e in wide.events) == sorted(str(item.id) for item in sent)


async def test_b21_a_member_that_leaves_hands_its_share_to_the_others(bus: Any) -> None:
    """B21: events a group member still had when it unsubscribed are handled by another
    member (each once); its run in flight completes."""
    running, release = asyncio.Event(), asyncio.Event()
    leaving_got: list[DataEvent] = []

    async def leaving(received: DataEvent) -> None:
        leaving_got.append(received)
        running.set()
        await release.wait()

    staying = Recorder()
    handle = await bus.subscribe("share.*", leaving, group="movers")
    await bus.subscribe("share.*", staying, group="movers")
    sent = [event("share.x", n=n) for n in range(6)]
    for item in sent:
        await bus.publish(item)
    await asyncio.wait_for(running.wait(), 10)
    assert bus.unsubscribe(handle) is True
    release.set()
    await drain_all(bus)
    assert len(leaving_got) == 1  # the run in flight, nothing after it left
    handled = sorted(str(e.id) for e in [*leaving_got, *staying.events])
    assert handled == sorted(str(item.id) for item in sent)


async def test_b21_a_closing_member_hands_even_its_cancelled_run_to_the_group(
    buses: BusFactory,
) -> None:
    """B21 with B20/B12: a bus closing while its group member is stuck gives every event it
    held, the cancelled run's included, to the member on the other bus."""
    closing, staying_bus = await buses.make(), await buses.make()
    stuck = asyncio.Event()

    async def hangs(received: DataEvent) -> None:
        stuck.set()
        await asyncio.Event().wait()  # until close cancels it

    staying = Recorder()
    await closing.subscribe("hand.*", hangs, group="handover")
    await staying_bus.subscribe("hand.*", staying, group="handover")
    sent = [event("hand.x", n=n) for n in range(6)]
    for item in sent:
        await closing.publish(item)
    await asyncio.wait_for(stuck.wait(), 10)
    await closing.close(timeout=0.2)
    await drain_all(staying_bus)
    assert sorted({str(e.id) for e in staying.events}) == sorted(str(item.id) for item in sent)


async def drain_all(*buses: Any) -> None:
    """Drain every bus twice: a grouped event may be handled on a bus other than the
    publisher's, and a delivery handed back by one bus may land on another."""
    for _ in range(2):
        for each in buses:
            await each.drain(10, fail_fast=True)
