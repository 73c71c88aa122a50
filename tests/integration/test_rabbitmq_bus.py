"""RabbitMQEventBus against the real broker on loopback (B12, B21-B24 and bad input)."""

from __future__ import annotations

import asyncio
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aio_pika
import pytest
import structlog

from app.errors import BusClosedError, PublishError
from app.events import DataEvent
from app.events.rabbitmq_consumer import queue_name
from tests.contract.events_support import BusFactory, event
from tests.fakes.tcp_proxy import TcpProxy

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def via(proxy: TcpProxy, url: str) -> str:
    """``url`` with its host and port replaced by the proxy's."""
    parts = urlsplit(url)
    auth = parts.netloc.rpartition("@")[0]
    return urlunsplit(parts._replace(netloc=f"{auth}@127.0.0.1:{proxy.port}"))


class Recorder:
    """An async handler that records events and signals when it has ``expected`` of them."""

    def __init__(self, expected: int = 1) -> None:
        self.events: list[DataEvent] = []
        self.expected = expected
        self.done = asyncio.Event()

    async def __call__(self, received: DataEvent) -> None:
        self.events.append(received)
        if len(self.events) >= self.expected:
            self.done.set()


async def test_messages_wait_in_a_durable_queue_while_the_consumer_is_stopped(
    buses: BusFactory,
) -> None:
    """Events published while the only grouped consumer is stopped arrive when it starts again."""
    first = await buses.make()
    await first.subscribe("order.*", Recorder(), group="billing")
    await first.close()
    publisher = await buses.make()
    sent = [event("order.placed", n=n) for n in range(5)]
    for item in sent:
        await publisher.publish(item)
    assert publisher.stats.unrouted == 0
    later = Recorder(expected=5)
    restarted = await buses.make()
    await restarted.subscribe("order.*", later, group="billing")
    await asyncio.wait_for(later.done.wait(), 10)
    assert [received.id for received in later.events] == [item.id for item in sent]


async def test_competing_consumers_in_a_group_handle_each_event_once(buses: BusFactory) -> None:
    """Two instances in one group split the events: each handled exactly once, both take part."""
    handled: dict[str, list[str]] = {"a": [], "b": []}

    def handler(name: str) -> Any:
        async def handle(received: DataEvent) -> None:
            handled[name].append(str(received.id))
            await asyncio.sleep(0.01)

        return handle

    first, second = await buses.make(), await buses.make()
    await first.subscribe("task.*", handler("a"), group="workers")
    await second.subscribe("task.*", handler("b"), group="workers")
    sent = [event("task.run", n=n) for n in range(30)]
    await asyncio.gather(*(first.publish(item) for item in sent))
    await first.drain(15, fail_fast=True)
    await second.drain(15, fail_fast=True)
    everything = handled["a"] + handled["b"]
    assert sorted(everything) == sorted(str(item.id) for item in sent)
    assert handled["a"]
    assert handled["b"]


async def test_without_a_group_every_instance_gets_every_event(buses: BusFactory) -> None:
    """Subscriptions without a group are per instance: both instances see all events."""
    recorders = [Recorder(expected=10), Recorder(expected=10)]
    instances = [await buses.make(), await buses.make()]
    for instance, recorder in zip(instances, recorders, strict=True):
        await instance.subscribe("cache.#", recorder)
    for n in range(10):
        await instances[0].publish(event("cache.invalidate", n=n))
    for recorder in recorders:
        await asyncio.wait_for(recorder.done.wait(), 10)
    assert [len(recorder.events) for recorder in recorders] == [10, 10]


async def test_a_delivery_cut_off_by_a_crash_is_redelivered(
    buses: BusFactory, proxy: TcpProxy, rabbitmq_url: str
) -> None:
    """B12: a run whose process dies (connection lost) is never acked; another instance gets it."""
    crashing_connection = await buses.connect(via(proxy, rabbitmq_url), reconnect_interval=30)
    crashing = await buses.make(connection=crashing_connection)
    entered = asyncio.Event()

    async def dies(received: DataEvent) -> None:
        entered.set()
        await asyncio.sleep(30)

    await crashing.subscribe("pay.*", dies, group="payments")
    sent = event("pay.charge")
    publisher = await buses.make()
    await publisher.publish(sent)
    await asyncio.wait_for(entered.wait(), 10)
    await proxy.cut()  # the "crash": the broker sees the connection drop, no ack was sent
    survivor = Recorder()
    other = await buses.make()
    await other.subscribe("pay.*", survivor, group="payments")
    await asyncio.wait_for(survivor.done.wait(), 10)
    assert [received.id for received in survivor.events] == [sent.id]


async def test_poison_message_is_dead_lettered_and_consumer_keeps_running(
    buses: BusFactory,
) -> None:
    """A message failing every attempt goes to the dead-letter queue; later events still run."""
    bus = await buses.make()
    good = Recorder()

    async def picky(received: DataEvent) -> None:
        if received.payload.get("poison"):
            raise ValueError("cannot handle this")
        await good(received)

    await bus.subscribe("msg.*", picky, max_attempts=2)
    poison = event("msg.in", poison=True)
    await bus.publish(poison)
    await bus.publish(event("msg.in", poison=False))
    await bus.drain(10)
    assert len(good.events) == 1
    (dead,) = await buses.dead_letter_messages()
    assert dead.message_id == str(poison.id)
    deaths = dead.headers["x-death"]
    assert isinstance(deaths, list)
    assert isinstance(deaths[0], dict)
    assert deaths[0]["reason"] == "rejected"


async def test_malformed_message_is_dead_lettered_with_a_logged_reason(buses: BusFactory) -> None:
    """A non-envelope message is dead-lettered with a logged reason; the consumer keeps going."""
    bus = await buses.make()
    good = Recorder()
    await bus.subscribe("raw.*", good)
    connection = await buses.connect()
    channel = await connection.channel()
    exchange = await channel.get_exchange(buses.exchange)
    with structlog.testing.capture_logs() as logs:
        await exchange.publish(aio_pika.Message(b"not an event", message_id="m1"), "raw.junk")
        await bus.publish(event("raw.fine"))
        await bus.drain(10)
    assert [received.type for received in good.events] == ["raw.fine"]
    (dead,) = await buses.dead_letter_messages()
    assert dead.message_id == "m1"
    assert dead.body == b"not an event"
    dead_logs = [entry for entry in logs if entry["event"] == "events.dead_lettered"]
    assert [entry["reason"] for entry in dead_logs] == ["malformed"]
    assert "not JSON" in dead_logs[0]["error"]
    assert bus.stats.dead_lettered == 1


async def test_wire_format_and_topology(buses: BusFactory) -> None:
    """B2/B22: persistent JSON, id/type/timestamp set, durable topic exchange, unrouted counted."""
    bus = await buses.make()
    connection = await buses.connect()
    channel = await connection.channel()
    await channel.declare_exchange(
        buses.exchange, aio_pika.ExchangeType.TOPIC, durable=True, passive=True
    )
    probe = await channel.declare_queue(exclusive=True)
    await probe.bind(buses.exchange, "wire.#")
    sent = event("wire.check", n=1)
    await bus.publish(sent)
    await bus.publish(event("nobody.bound"))
    message = await probe.get(timeout=5)
    assert message.message_id == str(sent.id)
    assert message.type == "wire.check"
    assert message.content_type == "application/json"
    assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    assert message.timestamp is not None
    assert abs(message.timestamp.timestamp() - sent.timestamp.timestamp()) < 1
    assert bus.stats.published == 2
    assert bus.stats.unrouted == 1
    await message.ack()


async def test_publish_fails_fast_when_the_broker_is_unreachable(
    buses: BusFactory, proxy: TcpProxy, rabbitmq_url: str
) -> None:
    """B24: with the broker unreachable publish raises PublishError within publish_timeout_s."""
    connection = await buses.connect(via(proxy, rabbitmq_url), reconnect_interval=30)
    bus = await buses.make(connection=connection, publish_timeout_s=1.0)
    await bus.publish(event("up.ok"))
    await proxy.cut()
    for _ in range(2):
        started = time.monotonic()
        with pytest.raises(PublishError):
            await bus.publish(event("down.fail"))
        assert time.monotonic() - started < 1.5
    with pytest.raises(PublishError):
        await bus.ping()


async def test_consumers_resume_after_the_broker_comes_back(
    buses: BusFactory, proxy: TcpProxy, rabbitmq_url: str
) -> None:
    """B23: after an outage every subscription consumes again within reconnect interval + 10 s."""
    connection = await buses.connect(via(proxy, rabbitmq_url), reconnect_interval=0.5)
    bus = await buses.make(connection=connection)
    grouped, private = Recorder(), Recorder()
    await bus.subscribe("svc.*", grouped, group="resumers")
    await bus.subscribe("svc.*", private)
    publisher = await buses.make()
    await publisher.publish(event("svc.before"))
    await asyncio.wait_for(private.done.wait(), 10)
    await proxy.cut()
    await asyncio.sleep(0.3)
    await proxy.restore()
    deadline = time.monotonic() + 0.5 + 10
    grouped.done.clear()
    private.done.clear()
    grouped.expected = private.expected = len(private.events) + 1
    while not (grouped.done.is_set() and private.done.is_set()):
        assert time.monotonic() < deadline, "consumers did not come back in time"
        await publisher.publish(event("svc.after"))
        await asyncio.sleep(0.2)
    await bus.ping()  # also checks every subscription has its consumer back
    assert proxy.accepted >= 2
    assert "svc.after" in [received.type for received in private.events]


async def test_ping_reports_a_subscription_whose_consumer_is_gone(buses: BusFactory) -> None:
    """ping raises PublishError naming a subscription whose consumer vanished from its channel."""
    bus = await buses.make()
    handle = await bus.subscribe("lost.*", Recorder())
    await bus.ping()
    consumer = bus._consumers[handle]
    underlay = await consumer.channel.get_underlay_channel()
    await underlay.basic_cancel(consumer.consumer_tag)
    with pytest.raises(PublishError, match="not consuming"):
        await bus.ping()


async def test_subscriptions_made_before_start_go_live_in_start(buses: BusFactory) -> None:
    """A subscription made before start() is live after start(); closing before start fails it."""
    bus = await buses.make(start=False)
    recorder = Recorder()
    handle = bus.subscribe("early.*", recorder)
    assert not handle.live
    await bus.start()
    assert handle.live
    await bus.publish(event("early.bird"))
    await asyncio.wait_for(recorder.done.wait(), 10)
    never_started = await buses.make(start=False)
    orphan = never_started.subscribe("early.*", Recorder())
    await never_started.close()
    with pytest.raises(BusClosedError, match="before start"):
        await orphan


def slow_channels(monkeypatch: pytest.MonkeyPatch, connection: Any, delay_s: float) -> list[Any]:
    """Make ``connection.channel()`` answer ``delay_s`` late (a slow broker); returns the
    channels it opened since, to check they were closed."""
    opened: list[Any] = []
    real_channel = connection.channel

    async def late_channel(**kwargs: Any) -> Any:
        await asyncio.sleep(delay_s)
        channel = await real_channel(**kwargs)
        opened.append(channel)
        return channel

    monkeypatch.setattr(connection, "channel", late_channel)
    return opened


async def consumer_count(url: str, queue: str) -> int:
    """Consumers on ``queue`` at the broker (0 if the queue does not exist)."""
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        try:
            declared = await channel.declare_queue(queue, passive=True)
        except aio_pika.exceptions.ChannelNotFoundEntity:
            return 0
        assert declared.declaration_result.consumer_count is not None
        return declared.declaration_result.consumer_count
    finally:
        await connection.close()


async def until_live(handle: Any) -> Any:
    """``await handle`` as a coroutine (for ``asyncio.wait_for``)."""
    return await handle


def group_queue(bus: Any, handle: Any) -> str:
    """The name of the queue ``handle`` (a grouped subscription of ``bus``) consumes from."""
    return queue_name(bus.exchange_name, bus.instance_id, handle)


async def test_close_gives_up_on_a_subscription_still_being_set_up(
    buses: BusFactory, monkeypatch: pytest.MonkeyPatch, rabbitmq_url: str
) -> None:
    """B20: close() cancels a subscription whose setup is slow: it never starts consuming."""
    connection = await buses.connect()
    bus = await buses.make(connection=connection)
    opened = slow_channels(monkeypatch, connection, 1.5)
    handle = bus.subscribe("late.#", Recorder(), group="late")
    await asyncio.sleep(0.1)
    with structlog.testing.capture_logs() as logs:
        started = time.monotonic()
        await bus.close(timeout=0.5)
        assert time.monotonic() - started < 1.4
        with pytest.raises(BusClosedError):
            await handle
        await asyncio.sleep(2.0)  # past the moment the slow channel() would have answered
    assert "events.subscribed" not in [entry["event"] for entry in logs]
    assert all(channel.is_closed for channel in opened)
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("events.setup")]
    assert await consumer_count(rabbitmq_url, group_queue(bus, handle)) == 0


async def test_unsubscribe_during_setup_never_starts_consuming(
    buses: BusFactory, monkeypatch: pytest.MonkeyPatch, rabbitmq_url: str
) -> None:
    """B17: a subscription unsubscribed while its setup runs never consumes; its channel closes."""
    connection = await buses.connect()
    bus = await buses.make(connection=connection)
    opened = slow_channels(monkeypatch, connection, 0.5)
    recorder = Recorder()
    handle = bus.subscribe("late.#", recorder, group="late")
    await asyncio.sleep(0.1)
    with structlog.testing.capture_logs() as logs:
        assert bus.unsubscribe(handle) is True
        with pytest.raises(BusClosedError, match="unsubscribed"):
            await asyncio.wait_for(until_live(handle), 10)
        await asyncio.sleep(0.3)
    assert "events.subscribed" not in [entry["event"] for entry in logs]
    assert opened
    assert all(channel.is_closed for channel in opened)
    assert await consumer_count(rabbitmq_url, group_queue(bus, handle)) == 0
    await bus.publish(event("late.x"))
    await asyncio.sleep(0.2)
    assert recorder.events == []


async def test_subscription_setup_is_bounded_by_publish_timeout(
    buses: BusFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A broker that never answers the setup fails the subscription within publish_timeout_s."""
    connection = await buses.connect()
    bus = await buses.make(connection=connection, publish_timeout_s=0.5)
    slow_channels(monkeypatch, connection, 60)
    handle = bus.subscribe("late.#", Recorder())
    started = time.monotonic()
    with pytest.raises(PublishError, match=r"publish_timeout_s=0\.5"):
        await asyncio.wait_for(until_live(handle), 10)
    assert time.monotonic() - started < 2
    assert not handle.live
