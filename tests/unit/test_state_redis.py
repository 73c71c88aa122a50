"""RedisStateBackend details that need no running Redis: construction and unreachable Redis."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from app.state import RedisStateBackend, StateBackend, StateBackendUnavailableError


async def test_implements_the_protocol_and_does_not_close_the_client() -> None:
    """The Redis backend is a StateBackend; close() leaves the caller's client usable."""
    client = Redis(host="127.0.0.1", port=1)
    backend = RedisStateBackend(client)
    assert isinstance(backend, StateBackend)
    await backend.close()
    assert client.connection_pool is not None
    await client.aclose()


async def test_rejects_a_client_that_decodes_responses() -> None:
    """Embeddings are binary, so a decode_responses=True client is refused up front."""
    client = Redis(decode_responses=True)
    with pytest.raises(ValueError, match="decode_responses=False"):
        RedisStateBackend(client)
    await client.aclose()


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "message"),
    [
        (("not redis",), {}, TypeError, "redis must be a redis.asyncio.Redis client, got str"),
        ((None,), {"namespace": ""}, ValueError, "namespace must be a non-empty str"),
        ((None,), {"max_value_bytes": -1}, ValueError, "max_value_bytes must be an int > 0"),
    ],
)
async def test_constructor_validates_its_arguments(
    args: tuple[object, ...], kwargs: dict[str, object], error: type[Exception], message: str
) -> None:
    """Bad constructor arguments fail at once with a message naming the argument."""
    client = Redis()
    with pytest.raises(error, match=message):
        RedisStateBackend(*(client if arg is None else arg for arg in args), **kwargs)  # type: ignore[arg-type]
    await client.aclose()


async def test_unreachable_redis_raises_a_typed_connection_error() -> None:
    """A refused connection surfaces as StateBackendUnavailableError (a ConnectionError)."""
    client = Redis(host="127.0.0.1", port=1, socket_connect_timeout=1, retry=Retry(NoBackoff(), 0))
    backend = RedisStateBackend(client, namespace="nowhere")
    with pytest.raises(StateBackendUnavailableError, match="Redis did not answer PING") as info:
        await backend.ping()
    assert isinstance(info.value, ConnectionError)
    with pytest.raises(StateBackendUnavailableError, match="script rate_limit"):
        await backend.rate_limit_check("u", 1, 1.0)
    await client.aclose()
