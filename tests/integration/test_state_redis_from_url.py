"""RedisStateBackend.from_url against the real Redis: a blocking pool of its own."""

from __future__ import annotations

import asyncio
import math

import pytest
from redis.asyncio import Redis

from app.errors import BackendClosedError, StateArgumentError, StateBackendUnavailableError
from app.state import RedisStateBackend

pytestmark = pytest.mark.integration

CALLS = 200


async def _cleanup(redis_url: str, namespace: str) -> None:
    client = Redis.from_url(redis_url)
    keys = [key async for key in client.scan_iter(match=f"{namespace}:*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


async def test_from_url_serves_200_concurrent_calls_on_10_connections(
    redis_url: str, unique_name: str
) -> None:
    """200 concurrent increments through from_url (10 connections) all succeed, none lost."""
    backend = RedisStateBackend.from_url(redis_url, namespace=unique_name, max_connections=10)
    try:
        results = await asyncio.gather(*(backend.increment("hits") for _ in range(CALLS)))
        assert sorted(results) == list(range(1, CALLS + 1))
        assert await backend.get_value("hits") == CALLS
    finally:
        await backend.close()
        await _cleanup(redis_url, unique_name)


async def test_redis_py_default_pool_fails_where_from_url_waits(
    redis_url: str, unique_name: str
) -> None:
    """The reason for from_url: on redis-py's default pool capped below the concurrency, the
    same 200 calls fail with "Too many connections" (typed as unavailable)."""
    client = Redis.from_url(redis_url, max_connections=10)
    backend = RedisStateBackend(client, namespace=unique_name)
    try:
        outcomes = await asyncio.gather(
            *(backend.increment("hits") for _ in range(CALLS)), return_exceptions=True
        )
        failures = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
        assert failures
        assert all(isinstance(error, StateBackendUnavailableError) for error in failures)
        assert "Too many connections" in str(failures[0])
    finally:
        await backend.close()
        await client.aclose()
        await _cleanup(redis_url, unique_name)


async def test_close_closes_the_client_from_url_built(redis_url: str, unique_name: str) -> None:
    """close() on a from_url backend refuses further calls and closes its connections."""
    separator = "&" if "?" in redis_url else "?"
    backend = RedisStateBackend.from_url(
        f"{redis_url}{separator}client_name={unique_name}", namespace=unique_name
    )
    observer = Redis.from_url(redis_url)

    async def connections() -> int:
        return sum(1 for client in await observer.client_list() if client["name"] == unique_name)

    try:
        await asyncio.gather(*(backend.set_value(f"k{n}", n) for n in range(5)))
        assert await connections() >= 1
        await backend.close()
        assert await connections() == 0
        with pytest.raises(BackendClosedError):
            await backend.get_value("k0")
    finally:
        await backend.close()
        await observer.aclose()
        await _cleanup(redis_url, unique_name)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"url": ""}, "url must be a non-empty"),
        ({"url": "http://user:hunter2@host/0"}, r"redis://.*'http://user:\*\*\*@host/0'"),
        ({"max_connections": 0}, "max_connections must be an int >= 1"),
        ({"max_connections": True}, "max_connections must be an int >= 1"),
        ({"timeout_s": 0}, "timeout_s must be a finite number"),
        ({"timeout_s": math.nan}, "timeout_s must be a finite number"),
    ],
)
def test_from_url_rejects_bad_arguments_naming_them(
    kwargs: dict[str, object], message: str
) -> None:
    """A bad URL, pool size or timeout is a StateArgumentError; the password is masked."""
    arguments: dict[str, object] = {"url": "redis://127.0.0.1:6379/0", **kwargs}
    with pytest.raises(StateArgumentError, match=message) as raised:
        RedisStateBackend.from_url(**arguments)  # type: ignore[arg-type]
    assert "hunter2" not in str(raised.value)
