"""The Redis session store against hashes it did not write (another program, a damaged key)."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from app.data import SessionConfig, SessionManager
from app.data.sessions import RedisSessionStore
from app.errors import StateBackendError

pytestmark = pytest.mark.integration

# Damage done to a stored session's hash: (HDEL field) or (HSET field, value). A missing
# activity field (a) is not among them: a touch writes it, so a touch repairs it.
DAMAGE = {
    "no user (u)": ("u",),
    "no creation time (c)": ("c",),
    "metadata value that is not JSON": ("m:k", "{not json"),
}


@pytest.mark.parametrize("damage", DAMAGE.values(), ids=DAMAGE.keys())
async def test_a_damaged_session_hash_is_a_backend_error_naming_the_session(
    redis_url: str, unique_name: str, damage: tuple[str, ...]
) -> None:
    """A session hash another program damaged is refused with a typed error naming the
    session, never handed out with made-up values."""
    client = Redis.from_url(redis_url)
    manager = SessionManager(
        SessionConfig(session_timeout=60),
        store=RedisSessionStore(client, namespace=unique_name),
    )
    try:
        session = await manager.create_session("alice", {"k": "v"})
        key = f"{unique_name}:sm:s:{session.session_id}"
        field, *value = damage
        if value:
            await client.hset(key, field, value[0])
        else:
            await client.hdel(key, field)
        with pytest.raises(StateBackendError, match=session.session_id):
            await manager.get_session(session.session_id)
    finally:
        keys = [key async for key in client.scan_iter(match=f"{unique_name}:*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()
