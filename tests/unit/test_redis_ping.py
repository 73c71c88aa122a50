"""``ping_shared``: concurrent PINGs on one client share one round trip, and only those."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from app.redis_ping import ping_shared


class CountingClient:
    """Stands in for a Redis client: each ``ping()`` waits for ``answer`` to be set."""

    def __init__(self, error: Exception | None = None) -> None:
        self.pings = 0
        self.error = error
        self.answer = asyncio.Event()

    async def ping(self) -> bool:
        self.pings += 1
        await self.answer.wait()
        if self.error is not None:
            raise self.error
        return True


def as_redis(client: CountingClient) -> Redis:
    return cast(Redis, client)


async def started(*coroutines: Any) -> list[asyncio.Task[None]]:
    tasks = [asyncio.ensure_future(coroutine) for coroutine in coroutines]
    await asyncio.sleep(0)
    return tasks


async def test_concurrent_pings_on_one_client_share_one_round_trip() -> None:
    """Pings of one client made at the same time send one PING between them."""
    client = CountingClient()
    tasks = await started(*(ping_shared(as_redis(client)) for _ in range(3)))
    client.answer.set()
    await asyncio.gather(*tasks)
    assert client.pings == 1


async def test_a_ping_after_the_last_one_landed_goes_to_the_server_again() -> None:
    """A ping that starts after the previous one answered sends a new PING."""
    client = CountingClient()
    client.answer.set()
    await ping_shared(as_redis(client))
    await ping_shared(as_redis(client))
    assert client.pings == 2


async def test_pings_on_different_clients_are_not_shared() -> None:
    """Each client gets its own PING: sharing is per client, never across clients."""
    first, second = CountingClient(), CountingClient()
    tasks = await started(ping_shared(as_redis(first)), ping_shared(as_redis(second)))
    first.answer.set()
    second.answer.set()
    await asyncio.gather(*tasks)
    assert (first.pings, second.pings) == (1, 1)


async def test_every_waiter_gets_the_error_of_the_shared_ping() -> None:
    """When the shared PING fails, every caller waiting on it gets that error."""
    client = CountingClient(RedisConnectionError("connection refused"))
    tasks = await started(ping_shared(as_redis(client)), ping_shared(as_redis(client)))
    client.answer.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert [type(result) for result in results] == [RedisConnectionError] * 2
    assert client.pings == 1


async def test_cancelling_the_first_caller_leaves_the_ping_to_the_others() -> None:
    """Cancelling the caller that started the PING does not cancel it for the others."""
    client = CountingClient()
    first, second = await started(ping_shared(as_redis(client)), ping_shared(as_redis(client)))
    first.cancel()
    await asyncio.sleep(0)
    client.answer.set()
    await second
    assert first.cancelled()
    assert client.pings == 1
