"""D7 across processes: two ``python -m app serve`` instances in distributed mode on one
database deliver every event exactly once per sink (the RabbitMQ bus and Redis pub/sub), with
one relay per sink active; after the active instance is stopped (SIGTERM), the other takes
over and nothing is lost or sent twice.

The relays poll for other processes' commits only every ``POLL_S``: an instance's relay sees
the other's commits when its own next commit wakes it. That lets the test hand the active
relay a batch of ``BATCH`` events at a moment of its choosing and stop the instance while the
batch is on its way to the broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import aio_pika
import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis
from aio_pika.abc import AbstractIncomingMessage

from app.entities.relay import consumer_lock_key
from app.events.codec import decode
from tests.conftest import API_TOKEN
from tests.integration.entities.support import eventually
from tests.integration.test_cli import app_env, free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RELAYS: Final = ("relay:bus", "relay:redis")
BATCH: Final = 600  # the batch the active relay has in flight when its instance is stopped
POLL_S: Final = 60.0  # longer than the test: a relay sees other processes' commits on a wake
START_WITHIN_S: Final = 60.0
STOP_WITHIN_S: Final = 45.0  # the lifecycle's entities stop timeout is publish timeout + 5 s
WRITERS: Final = 8  # requests in flight per instance


@dataclass
class Instance:
    """One ``serve`` process and a client on it."""

    name: str
    process: asyncio.subprocess.Process
    log: Path
    client: httpx.AsyncClient

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


@dataclass
class Received:
    """What a subscriber got from one sink, in arrival order: (position, event id)."""

    events: list[tuple[int, str]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def add(self, position: int, event_id: str) -> None:
        self.events.append((position, event_id))
        self.arrived.set()

    def ours(self, ids: dict[str, int]) -> list[int]:
        """The positions of this test's events (Redis channels are shared with whatever else
        publishes ``events:*`` on the server), each checked against its event id."""
        kept = [(position, event_id) for position, event_id in self.events if event_id in ids]
        assert all(ids[event_id] == position for position, event_id in kept)
        return [position for position, _ in kept]


def serve_env(root: Path, **services: str) -> dict[str, str]:
    """The environment of one instance: its own data directory and FAISS index, the shared
    services, the test's token."""
    return app_env(
        root,
        DEPLOYMENT_MODE="distributed",
        EVENT_BUS="rabbitmq",
        VECTORS__BACKEND="faiss",  # the loopback Postgres 15 has no pgvector
        API__TOKENS=API_TOKEN,
        API__RATE_LIMIT="1000000",
        ENTITIES__POLL_INTERVAL_S=str(POLL_S),
        ENTITIES__STANDBY_RETRY_S="0.2",
        ENTITIES__RELAY_BATCH_SIZE=str(BATCH),
        **services,
    )


@pytest.fixture
async def start_instance(
    tmp_path: Path,
    database: str,
    redis_url: str,
    rabbitmq_url: str,
    rabbitmq_exchange: str,
    unique_name: str,
) -> AsyncIterator[Callable[[str], Awaitable[Instance]]]:
    """Starts ``serve`` instances on the test's database, namespace and exchange, answering
    /health/ready; afterwards stops (SIGTERM, then SIGKILL) whichever still runs."""
    started: list[Instance] = []

    async def start(name: str) -> Instance:
        root = tmp_path / name
        root.mkdir()
        port = free_port()
        log = root / "serve.log"
        with log.open("wb") as out:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "app",
                "serve",
                "--port",
                str(port),
                cwd=root,
                env=serve_env(
                    root,
                    POSTGRES__DSN=database,
                    REDIS__URL=redis_url,
                    RABBITMQ__URL=rabbitmq_url,
                    RABBITMQ__EXCHANGE=rabbitmq_exchange,
                    STATE__NAMESPACE=unique_name,
                ),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        client = httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}",
            headers={"Authorization": f"Bearer {API_TOKEN}"},
            timeout=10,
        )
        instance = Instance(name, process, log, client)
        started.append(instance)
        deadline = time.monotonic() + START_WITHIN_S
        while True:
            with contextlib.suppress(httpx.TransportError):
                if (await client.get("/health/ready")).status_code == 200:
                    return instance
            assert process.returncode is None, f"{name} exited:\n{instance.output()}"
            assert time.monotonic() < deadline, f"{name} not ready:\n{instance.output()}"
            await asyncio.sleep(0.2)

    yield start
    for instance in started:
        await instance.client.aclose()
        if instance.process.returncode is None:
            instance.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(instance.process.wait(), STOP_WITHIN_S)
        except TimeoutError:
            instance.process.kill()
            await instance.process.wait()


@pytest.fixture
async def redis_events(redis_url: str) -> AsyncIterator[Received]:
    """Everything published on ``events:*`` while the test runs."""
    received = Received()
    client = aioredis.from_url(redis_url)
    pubsub = client.pubsub()
    await pubsub.psubscribe("events:*")

    async def listen() -> None:
        async for message in pubsub.listen():
            if message["type"] == "pmessage":
                event = json.loads(message["data"])
                received.add(int(event["global_position"]), event["event_id"])

    listener = asyncio.create_task(listen())
    try:
        yield received
    finally:
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listener
        await pubsub.aclose()  # type: ignore[no-untyped-call]
        await client.aclose()


@pytest.fixture
async def bus_events(rabbitmq_url: str, rabbitmq_exchange: str) -> AsyncIterator[Received]:
    """Everything published on the test's exchange, through a queue of the test's own bound
    to ``#`` (exclusive: it goes with the connection)."""
    received = Received()
    connection = await aio_pika.connect(rabbitmq_url)
    try:
        channel = await connection.channel()
        # Declared as the bus declares it, before the instances start, so nothing is unrouted.
        exchange = await channel.declare_exchange(
            rabbitmq_exchange, aio_pika.ExchangeType.TOPIC, durable=True
        )
        queue = await channel.declare_queue(exclusive=True)
        await queue.bind(exchange, routing_key="#")

        async def on_message(message: AbstractIncomingMessage) -> None:
            event = decode(message.body)
            received.add(int(event.payload["global_position"]), str(event.id))

        await queue.consume(on_message, no_ack=True)
        yield received
    finally:
        await connection.close()


async def relay_holders(pool: asyncpg.Pool) -> dict[str, int]:
    """Per relay, how many sessions hold its advisory lock on the test's database."""
    held: dict[str, int] = {}
    for name in RELAYS:
        key = consumer_lock_key(name)
        held[name] = int(
            await pool.fetchval(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
                "AND classid::bigint = $1 AND objid::bigint = $2 AND objsubid = 1",
                (key >> 32) & 0xFFFF_FFFF,
                key & 0xFFFF_FFFF,
            )
        )
    return held


async def active_relays(instance: Instance) -> dict[str, bool]:
    """The instance's own view (readiness details): which of its relays are active."""
    ready = await instance.client.get("/health/ready")
    assert ready.status_code == 200, ready.text
    details: dict[str, Any] = ready.json()["backends"]["entities"]["details"]
    return {name: bool(details[name]["active"]) for name in RELAYS}


async def all_active(instance: Instance) -> bool:
    return all((await active_relays(instance)).values())


async def post(instance: Instance, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await instance.client.post(f"/api/{path}", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def patch(instance: Instance, path: str, body: dict[str, Any]) -> None:
    response = await instance.client.patch(f"/api/{path}", json=body)
    assert response.status_code == 200, response.text


async def bounded(calls: list[Awaitable[Any]]) -> list[Any]:
    """Run ``calls`` with at most ``WRITERS`` in flight."""
    gate = asyncio.Semaphore(WRITERS)

    async def one(call: Awaitable[Any]) -> Any:
        async with gate:
            return await call

    return await asyncio.gather(*(one(call) for call in calls))


async def write_goals(instance: Instance, other: Instance, tag: str) -> None:
    """Agents through ``instance``, goals on them through ``other``, status changes back
    through ``instance``: every write sees the other instance's."""
    agents = await bounded(
        [
            post(instance, "agents", {"name": f"{tag}{n}", "agent_type": "reasoning"})
            for n in range(10)
        ]
    )
    goals = await bounded(
        [
            post(other, "goals", {"agent_id": agent["id"], "description": f"{tag}{n}"})
            for n in range(4)
            for agent in agents
        ]
    )
    await bounded([patch(instance, f"goals/{goal['id']}", {"status": "active"}) for goal in goals])


async def write_documents(instance: Instance, count: int, tag: str) -> None:
    await bounded([post(instance, "documents", {"title": f"{tag}{n}"}) for n in range(count)])


async def event_ids(pool: asyncpg.Pool) -> dict[str, int]:
    rows = await pool.fetch("SELECT global_position, event_id FROM events")
    return {str(row["event_id"]): int(row["global_position"]) for row in rows}


async def delivered_everything(pool: asyncpg.Pool, *sinks: Received) -> bool:
    ids = await event_ids(pool)
    return all(set(sink.ours(ids)) == set(ids.values()) for sink in sinks)


async def test_two_instances_deliver_each_event_once_per_sink_across_a_stop(
    start_instance: Callable[[str], Awaitable[Instance]],
    pool: asyncpg.Pool,
    redis_events: Received,
    bus_events: Received,
) -> None:
    """Two serve processes on one database: one holds each relay, every event written through
    either arrives once per sink, in order; after a SIGTERM while the active relay has a batch
    in flight, the other instance takes over and each event still arrives exactly once."""
    first = await start_instance("first")
    await eventually(lambda: all_active(first), what="the first instance taking the relays")
    second = await start_instance("second")
    assert await active_relays(second) == dict.fromkeys(RELAYS, False)
    assert await relay_holders(pool) == dict.fromkeys(RELAYS, 1)

    # Both instances write, each seeing the other's entities; the last write is the first's,
    # whose commit wakes its relay for everything before it.
    await asyncio.gather(write_goals(first, second, "a"), write_goals(second, first, "b"))
    await post(first, "documents", {"title": "wake"})
    await eventually(
        lambda: delivered_everything(pool, redis_events, bus_events),
        timeout_s=30,
        what="the events of both instances delivered",
    )

    # A batch for the first instance's relay, then its own commit hands it over; stop the
    # instance as soon as the batch reaches the broker.
    await write_documents(second, BATCH - 1, "c")
    before = len(bus_events.events)
    bus_events.arrived.clear()
    await post(first, "documents", {"title": "wake"})
    while len(bus_events.events) == before:
        await asyncio.wait_for(bus_events.arrived.wait(), 10)
        bus_events.arrived.clear()
    first.process.send_signal(signal.SIGTERM)
    arrived_at_signal = len(bus_events.events) - before
    code = await asyncio.wait_for(first.process.wait(), STOP_WITHIN_S)
    assert code == 0, first.output()

    assert arrived_at_signal < BATCH, "the batch was no longer in flight at the SIGTERM"
    await eventually(lambda: all_active(second), what="the second instance taking over")
    assert await relay_holders(pool) == dict.fromkeys(RELAYS, 1)
    await write_goals(second, second, "d")
    await eventually(
        lambda: delivered_everything(pool, redis_events, bus_events),
        timeout_s=30,
        what="every event delivered after the takeover",
    )
    await asyncio.sleep(0.5)  # time for a late duplicate to show
    ids = await event_ids(pool)
    head = len(ids)
    assert head > BATCH
    for sink, received in (("bus", bus_events), ("redis", redis_events)):
        positions = received.ours(ids)
        duplicates = len(positions) - len(set(positions))
        assert duplicates == 0, f"{sink}: {duplicates} events delivered twice after a SIGTERM"
        assert positions == list(range(1, head + 1)), f"{sink}: out of order"
