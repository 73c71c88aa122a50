"""The Redis session store parses replies as bytes, so it refuses a client that decodes them."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from app.data.sessions import RedisSessionStore
from app.errors import StateArgumentError, StateArgumentTypeError


async def test_refuses_a_client_that_decodes_responses() -> None:
    client = Redis(decode_responses=True)
    with pytest.raises(StateArgumentError, match=r"decode_responses=False \(session replies"):
        RedisSessionStore(client, namespace="n")
    await client.aclose()


def test_refuses_something_that_is_not_a_redis_client() -> None:
    with pytest.raises(StateArgumentTypeError, match=r"redis\.asyncio\.Redis client, got dict"):
        RedisSessionStore({}, namespace="n")  # type: ignore[arg-type]
