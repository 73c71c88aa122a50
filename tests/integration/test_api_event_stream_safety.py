"""Event streams under hostile or failing input: no forged server-sent events, no leaked
subscriptions when a stream cannot be opened (in-process bus and real RabbitMQ)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import cast
from urllib.parse import urlsplit, urlunsplit

import aio_pika
import httpx
import pytest
from dependency_injector import providers
from structlog.testing import capture_logs

from app.events import DataEvent, RabbitMQEventBus
from app.events.codec import encode
from app.services.events import EventStream
from app.web import create_app
from app.web.routes.events import _sse, sse_field
from containers import Container
from tests.conftest import Fakes, serve_app
from tests.contract.events_support import BusFactory
from tests.fakes.tcp_proxy import TcpProxy
from tests.integration.test_api_served import AUTH, read_event, served

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

# What an in-process component (or a foreign publisher) could put in a type to forge an event.
FORGED_TYPE = 'order\ndata: {"forged": true}\n\nevent: admin'


@pytest.fixture
def container(overridden_container: Container) -> Container:
    """The container with the fakes and no Postgres: the event routes never use it, and an
    overridden provider is not started (so no embedded Postgres per test)."""
    overridden_container.postgres.override(providers.Object(None))
    overridden_container.database.override(providers.Object(None))
    return overridden_container


def via(proxy: TcpProxy, url: str) -> str:
    """``url`` with its host and port replaced by the proxy's."""
    parts = urlsplit(url)
    auth = parts.netloc.rpartition("@")[0]
    return urlunsplit(parts._replace(netloc=f"{auth}@127.0.0.1:{proxy.port}"))


def assert_nothing_forged(lines: list[str]) -> None:
    """No line of the stream came out of a forged type."""
    assert "event: admin" not in lines
    assert not [line for line in lines if line.startswith('data: {"forged"')]
    assert not [
        line for line in lines if line.startswith("event: order") and line != "event: order"
    ]


async def read_until_event(lines: AsyncIterator[str], seen: list[str]) -> dict[str, str]:
    """The next server-sent event's fields, recording every raw line read on the way."""

    async def recorded() -> AsyncIterator[str]:
        async for line in lines:
            seen.append(line)
            yield line

    return await asyncio.wait_for(read_event(recorded()), 10)


# -- forged event types ----------------------------------------------------------------


async def test_in_process_bus_refuses_a_forged_type_and_the_stream_shows_none(
    container: Container, fakes: Fakes
) -> None:
    """An in-process publish of a type with line breaks is refused; the stream never forges."""
    app = create_app(container)
    async with (
        served(app) as (base, _server),
        httpx.AsyncClient(base_url=base, headers=AUTH) as client,
        client.stream("GET", "/v1/events/stream", params={"pattern": "#"}) as stream,
    ):
        lines = stream.aiter_lines()
        assert await anext(lines) == ": subscribed"
        with pytest.raises(ValueError, match="control character"):
            await fakes.bus.publish(DataEvent(FORGED_TYPE, "order", "1", {"n": 1}))
        genuine = DataEvent("order", "order", "2", {"n": 2})
        await fakes.bus.publish(genuine)
        seen: list[str] = []
        fields = await read_until_event(lines, seen)
    assert fields["event"] == "order"
    assert fields["id"] == str(genuine.id)
    assert_nothing_forged(seen)


async def test_a_foreign_envelope_with_a_forged_type_never_reaches_a_stream(
    container: Container, buses: BusFactory
) -> None:
    """RabbitMQ: an envelope whose type holds line breaks is dead-lettered, never streamed."""
    bus: RabbitMQEventBus = await buses.make()
    container.event_bus.override(providers.Object(bus))
    app = create_app(container)
    template = json.loads(encode(DataEvent("order", "order", "1", {"n": 1}), 10**6).body)
    template["type"] = FORGED_TYPE
    async with (
        served(app) as (base, _server),
        httpx.AsyncClient(base_url=base, headers=AUTH) as client,
        client.stream("GET", "/v1/events/stream", params={"pattern": "#"}) as stream,
    ):
        lines = stream.aiter_lines()
        assert await anext(lines) == ": subscribed"
        connection = await buses.connect()
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(buses.exchange)
        await exchange.publish(
            aio_pika.Message(json.dumps(template).encode(), content_type="application/json"),
            routing_key="order",
        )
        genuine = DataEvent("order", "order", "2", {"n": 2})
        await bus.publish(genuine)
        seen: list[str] = []
        fields = await read_until_event(lines, seen)
    assert fields["id"] == str(genuine.id)
    assert_nothing_forged(seen)
    for _ in range(100):  # the reject of the forged message is counted asynchronously
        if bus.stats.dead_lettered:
            break
        await asyncio.sleep(0.05)
    assert bus.stats.dead_lettered == 1


def test_an_sse_field_refuses_a_line_break_whatever_it_is_given() -> None:
    """The SSE field writer refuses a value with CR or LF instead of ending the line early."""
    for name, value in (("event", FORGED_TYPE), ("id", "1\rdata: x"), ("data", "a\r\nb")):
        with pytest.raises(ValueError, match="CR or LF") as raised:
            sse_field(name, value)
        assert repr(value) in str(raised.value)
    assert sse_field("event", "order.placed") == "event: order.placed\n"


class Scripted:
    """A stream that hands out the given events, then ends (its ``stop`` is set)."""

    def __init__(self, *events: DataEvent) -> None:
        self.events = list(events)

    async def next(self, stop: asyncio.Event, timeout_s: float) -> DataEvent | None:
        if not self.events:
            stop.set()
            return None
        return self.events.pop(0)


async def test_the_stream_drops_an_event_it_cannot_write_safely_and_goes_on() -> None:
    """An event with a forged type that reached the writer is dropped and logged, never forged."""
    genuine = DataEvent("order", "order", "2")
    scripted = Scripted(DataEvent(FORGED_TYPE, "order", "1"), genuine)
    with capture_logs() as logs:
        frames = [frame async for frame in _sse(cast(EventStream, scripted), asyncio.Event())]
    assert frames[0] == b": subscribed\n\n"
    assert len(frames) == 2
    assert frames[1].startswith(f"id: {genuine.id}\nevent: order\ndata: ".encode())
    assert frames[1].endswith(b"\n\n")
    assert frames[1].count(b"\n") == 4
    assert [entry["event"] for entry in logs] == ["api.event_stream_event_refused"]


# -- subscriptions of streams that could not be opened ---------------------------------


async def test_a_stream_the_broker_cannot_set_up_is_503_and_leaves_no_subscription(
    container: Container, buses: BusFactory, proxy: TcpProxy, rabbitmq_url: str
) -> None:
    """RabbitMQ hangs during the subscription setup: 503, and the bus keeps no consumer."""
    connection = await buses.connect(via(proxy, rabbitmq_url))
    bus: RabbitMQEventBus = await buses.make(connection=connection, publish_timeout_s=0.5)
    container.event_bus.override(providers.Object(bus))
    async with serve_app(container) as api:
        proxy.freeze()
        try:
            for _ in range(3):
                response = await api.get("/v1/events/stream", params={"pattern": "#"})
                assert response.status_code == 503
                assert response.json()["error"]["code"] == "publish_failed"
                assert bus._consumers == {}
                assert len(bus._registry) == 0
        finally:
            proxy.thaw()


async def test_a_cancelled_open_leaves_no_subscription_on_the_rabbitmq_bus(
    buses: BusFactory, proxy: TcpProxy, rabbitmq_url: str
) -> None:
    """A client gone while RabbitMQ sets the stream's subscription up leaves no consumer."""
    connection = await buses.connect(via(proxy, rabbitmq_url))
    bus: RabbitMQEventBus = await buses.make(connection=connection, publish_timeout_s=0.5)
    proxy.freeze()
    try:
        opening = asyncio.create_task(EventStream(bus, "#").open())
        await asyncio.sleep(0.1)
        assert len(bus._consumers) == 1
        opening.cancel()
        with pytest.raises(asyncio.CancelledError):
            await opening
        assert bus._consumers == {}
        assert len(bus._registry) == 0
    finally:
        proxy.thaw()
