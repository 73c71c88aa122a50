"""RedisStateBackend details that need no running Redis: construction, unreachable Redis and
how Redis reply errors are mapped (replies faked on a never-connected client)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import OutOfMemoryError, ReadOnlyError, ResponseError

from app.state import (
    RedisStateBackend,
    StateArgumentError,
    StateArgumentTypeError,
    StateBackend,
    StateBackendError,
    StateBackendUnavailableError,
)


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


def failing_client(method: str, error: Exception) -> Redis:
    """A client (never connected) whose ``method`` raises ``error`` as a Redis reply would."""
    client = Redis(host="127.0.0.1", port=1)

    async def fail(*args: Any, **kwargs: Any) -> Any:
        raise error

    setattr(client, method, fail)
    return client


SCRIPT_TAIL = " script: 0123abcd, on @user_script:12."


@pytest.mark.parametrize(
    ("error", "expected", "message"),
    [
        (
            ResponseError("value is not an integer or out of range" + SCRIPT_TAIL),
            StateArgumentTypeError,
            "value under key 'k' must be a signed 64-bit int to increment",
        ),
        (
            ResponseError("increment or decrement would overflow" + SCRIPT_TAIL),
            StateArgumentError,
            "increment of key 'k' by 1 would overflow a signed 64-bit int",
        ),
        (
            ReadOnlyError("You can't write against a read only replica.", status_code="READONLY"),
            StateBackendUnavailableError,
            "Redis refused script increment .* read only replica",
        ),
        (
            ReadOnlyError("You can't write against a read only replica."),
            StateBackendUnavailableError,
            "read only replica",
        ),
        (
            OutOfMemoryError(
                "command not allowed when used memory > 'maxmemory'.", status_code="OOM"
            ),
            StateBackendUnavailableError,
            "maxmemory",
        ),
        (
            ResponseError("BUSY Redis is busy running a script."),
            StateBackendUnavailableError,
            "BUSY Redis is busy",
        ),
        (
            ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value"),
            StateBackendError,
            "WRONGTYPE",
        ),
        (
            ResponseError("Error running script, @user_script:3: attempt to call a nil value"),
            StateBackendError,
            "Error running script",
        ),
    ],
    ids=["not-integer", "overflow", "readonly", "readonly-bare", "oom", "busy", "wrongtype", "lua"],
)
async def test_increment_maps_only_not_an_integer_to_type_error(
    error: Exception, expected: type[Exception], message: str
) -> None:
    """Only "not an integer" is the contract's TypeError; other replies are typed state errors."""
    client = failing_client("evalsha", error)
    backend = RedisStateBackend(client, namespace="ns")
    with pytest.raises(expected, match=message) as info:
        await backend.increment("k")
    assert type(info.value) is expected  # not a TypeError, unless the stored value is no int
    assert info.value.__cause__ is error
    await client.aclose()


@pytest.mark.parametrize(
    ("call", "method"),
    [
        (lambda b: b.set_value("k", 1), "execute_command"),
        (lambda b: b.get_value("k"), "execute_command"),
        (lambda b: b.acquire_lock("k", 1), "execute_command"),
        (lambda b: b.release_lock("k"), "evalsha"),
        (lambda b: b.rate_limit_check("u", 1, 1.0), "evalsha"),
    ],
    ids=["set_value", "get_value", "acquire_lock", "release_lock", "rate_limit_check"],
)
async def test_reply_errors_of_every_call_are_typed(
    call: Callable[[RedisStateBackend], Awaitable[object]], method: str
) -> None:
    """A Redis reply error never escapes as redis-py's ResponseError: READONLY is unavailable."""
    error = ReadOnlyError("You can't write against a read only replica.", status_code="READONLY")
    client = failing_client(method, error)
    backend = RedisStateBackend(client, namespace="ns")
    with pytest.raises(StateBackendUnavailableError, match="Redis refused") as info:
        await call(backend)
    assert info.value.__cause__ is error
    await client.aclose()


@pytest.mark.parametrize(
    ("stored", "call"),
    [
        (b"not a session blob", lambda b: b.get_session("s1")),
        (b'12:["a list"]', lambda b: b.get_session("s1")),
        (b"{not json", lambda b: b.get_value("s1")),
    ],
    ids=["session-garbage", "session-not-object", "value-not-json"],
)
async def test_a_key_another_program_wrote_is_a_state_error_not_the_callers(
    stored: bytes, call: Callable[[RedisStateBackend], Awaitable[object]]
) -> None:
    """A stored blob this data layer did not write is a StateBackendError naming the key (a
    server fault, 500), not a ValueError that the API would blame on the request (422)."""
    client = Redis(host="127.0.0.1", port=1)
    client.execute_command = _answering(stored)  # type: ignore[method-assign,assignment]
    backend = RedisStateBackend(client, namespace="ns")
    with pytest.raises(StateBackendError, match="not one this data layer wrote") as info:
        await call(backend)
    assert not isinstance(info.value, ValueError)
    assert "ns:" in str(info.value)
    await client.aclose()


def _answering(reply: bytes) -> Callable[..., Awaitable[bytes]]:
    async def execute_command(*_args: object, **_kwargs: object) -> bytes:
        return reply

    return execute_command
