"""The Redis backend's Lua scripts against the real Redis: NOSCRIPT reloads, key layout."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from app.state.scripts import LuaScript, load_script


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[Redis]:
    """A client on the real Redis, closed afterwards."""
    redis = Redis.from_url(redis_url)
    yield redis
    await redis.aclose()


async def test_a_script_unknown_to_redis_is_loaded_on_noscript(client: Redis) -> None:
    """The first EVALSHA of a never-loaded script gets NOSCRIPT, loads it and succeeds."""
    source = f"-- {uuid.uuid4().hex}\nreturn ARGV[1]"
    script = LuaScript("probe", source, hashlib.sha1(source.encode()).hexdigest())
    assert await client.script_exists(script.sha) == [False]
    assert await script.run(client, 0, "hello") == b"hello"
    assert await client.script_exists(script.sha) == [True]
    assert await script.run(client, 0, "again") == b"again"


async def test_a_wrong_sha_is_reported_not_silently_run(client: Redis) -> None:
    """If Redis names the loaded source differently from our SHA, run() raises RuntimeError."""
    script = LuaScript("mismatch", f"-- {uuid.uuid4().hex}\nreturn 1", "0" * 40)
    with pytest.raises(RuntimeError, match="expected SHA 0000"):
        await script.run(client, 0)


def test_every_script_ships_beside_the_module() -> None:
    """All five scripts load from the package and get distinct SHAs."""
    names = ["rate_limit", "lock_release", "lock_extend", "increment", "session_touch"]
    shas = {load_script(name).sha for name in names}
    assert len(shas) == 5
