"""The Redis session store against hashes it did not write (another program, a damaged key)."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from app.data import SessionConfig, SessionManager
from app.data.sessions import RedisSessionStore
from app.errors import StateBackendError

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("missing", ["u", "c"])
async def test_a_session_hash_without_its_own_fields_is_a_backend_error(
    redis_url: str, unique_name: str, missing: str
) -> None:
    """A session hash lacking the user (u) or creation (c) field is refused with a typed error
    naming the session, never handed out with made-up values. (A missing activity field is
    what a touch writes, so a touch repairs it.)"""
    client = Redis.from_url(redis_url)
    manager = SessionManager(
        SessionConfig(session_timeout=60),
        store=RedisSessionStore(client, namespace=unique_name),
    )
    try:
        session = await manager.create_session("alice", {"k": "v"})
        await client.hdel(f"{unique_name}:sm:s:{session.session_id}", missing)
        with pytest.raises(StateBackendError, match=session.session_id):
            await manager.get_session(session.session_id)
    finally:
        keys = [key async for key in client.scan_iter(match=f"{unique_name}:*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


async def test_a_metadata_value_that_is_not_json_is_a_backend_error(
    redis_url: str, unique_name: str
) -> None:
    """A metadata field another program overwrote with text that is not JSON is refused with
    a typed error naming the session."""
    client = Redis.from_url(redis_url)
    manager = SessionManager(
        SessionConfig(session_timeout=60),
        store=RedisSessionStore(client, namespace=unique_name),
    )
    try:
        session = await manager.create_session("alice", {"k": "v"})
        await client.hset(f"{unique_name}:sm:s:{session.session_id}", "m:k", "{not json")
        with pytest.raises(StateBackendError, match=session.session_id):
            await manager.get_session(session.session_id)
    finally:
        keys = [key async for key in client.scan_iter(match=f"{unique_name}:*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()
