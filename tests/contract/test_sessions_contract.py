"""Contract E (SM1-SM6): one suite for SessionManager on the memory store and on Redis.

Memory runs on a fake clock that :meth:`SessionHarness.advance` moves; Redis runs on its own
clock, so ``advance`` really lets the time pass (timeouts of 0.5 s, margins of 0.2 s or more).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest
from redis.asyncio import Redis

from app.data import (
    InvalidSessionError,
    SessionConfig,
    SessionLimitError,
    SessionManager,
    SessionNotFoundError,
)
from app.data.sessions import InMemorySessionStore, RedisSessionStore, SessionStore
from app.errors import BackendClosedError
from tests.contract.state_harness import FakeClock

TIMEOUT_S = 0.5


@dataclass
class SessionHarness:
    """Managers of one kind on one shared store, and a way to let time pass."""

    kind: str
    make_store: Callable[[], SessionStore]
    clock: FakeClock | None
    managers: list[SessionManager] = field(default_factory=list)

    def manager(self, **config: object) -> SessionManager:
        """A manager (its cleanup task not started) with a 0.5 s timeout unless told."""
        values: dict[str, object] = {"session_timeout": TIMEOUT_S, **config}
        manager = SessionManager(SessionConfig(**values), store=self.make_store())  # type: ignore[arg-type]
        self.managers.append(manager)
        return manager

    async def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass: move the fake clock, or sleep for Redis' real one."""
        if self.clock is not None:
            self.clock.now += seconds
        else:
            await asyncio.sleep(seconds)


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.integration)])
async def harness(
    request: pytest.FixtureRequest, unique_name: str
) -> AsyncIterator[SessionHarness]:
    """A fresh store of each kind; Redis keys under a unique namespace are removed after."""
    if request.param == "memory":
        clock = FakeClock(start=1_800_000_000.0)
        shared = InMemorySessionStore(clock=clock)
        yield SessionHarness("memory", lambda: shared, clock)
        return
    redis_url: str = request.getfixturevalue("redis_url")
    client = Redis.from_url(redis_url)
    try:
        yield SessionHarness(
            "redis", lambda: RedisSessionStore(client, namespace=unique_name), None
        )
    finally:
        keys = [key async for key in client.scan_iter(match=f"{unique_name}:*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


async def test_sm1_ids_are_unique_and_carry_at_least_128_random_bits(
    harness: SessionHarness,
) -> None:
    """SM1: 200 created sessions have 200 distinct URL-safe ids of >= 128 bits."""
    manager = harness.manager()
    ids = [(await manager.create_session("u")).session_id for _ in range(200)]
    assert len(set(ids)) == 200
    assert all(re.fullmatch(r"[A-Za-z0-9_-]+", sid) and len(sid) * 6 >= 128 for sid in ids)


async def test_sm2_get_and_update_slide_the_idle_timeout(harness: SessionHarness) -> None:
    """SM2: reads and updates restart the idle timer; an idle session reads as None."""
    manager = harness.manager()
    session = await manager.create_session("alice", {"n": 1})
    await harness.advance(0.3)
    first = await manager.get_session(session.session_id)
    assert first is not None
    assert first.last_activity > session.last_activity
    assert first.created_at == session.created_at
    await harness.advance(0.3)  # 0.6 s since creation, 0.3 s since the read
    assert await manager.update_session(session.session_id, {"n": 2})
    await harness.advance(0.3)
    assert await manager.get_session(session.session_id) is not None
    await harness.advance(0.75)
    assert await manager.get_session(session.session_id) is None


async def test_sm2_idle_session_is_gone_before_any_cleanup(harness: SessionHarness) -> None:
    """SM2: past the timeout a session is None and not listed, with no cleanup run."""
    manager = harness.manager()
    session = await manager.create_session("bob")
    await harness.advance(0.75)
    assert await manager.get_session(session.session_id) is None
    assert await manager.list_user_sessions("bob") == []
    with pytest.raises(SessionNotFoundError):
        await manager.update_session(session.session_id, {"x": 1})


async def test_sm3_full_store_evicts_the_least_recently_active(harness: SessionHarness) -> None:
    """SM3: at max_sessions a create evicts the least recently active session."""
    manager = harness.manager(max_sessions=3)
    a, b, c = [await manager.create_session(user) for user in ("a", "b", "c")]
    assert await manager.get_session(a.session_id) is not None  # a is now the most recent
    d = await manager.create_session("d")
    assert await manager.get_session(b.session_id) is None
    for kept in (a, c, d):
        assert await manager.get_session(kept.session_id) is not None


async def test_sm3_reject_policy_refuses_and_keeps_everything(harness: SessionHarness) -> None:
    """SM3: policy reject raises SessionLimitError at the cap and stores nothing new."""
    manager = harness.manager(max_sessions=2, policy="reject")
    kept = [await manager.create_session("u") for _ in range(2)]
    with pytest.raises(SessionLimitError, match="cap"):
        await manager.create_session("v")
    assert await manager.list_user_sessions("v") == []
    for session in kept:
        assert await manager.get_session(session.session_id) is not None


async def test_sm3_per_user_cap_evicts_only_that_users_oldest(harness: SessionHarness) -> None:
    """SM3: the per-user cap evicts the user's own least recently active session."""
    manager = harness.manager(max_sessions=10, max_sessions_per_user=2)
    other = await manager.create_session("other")
    first = await manager.create_session("u")
    second = await manager.create_session("u")
    third = await manager.create_session("u")
    listed = [s.session_id for s in await manager.list_user_sessions("u")]
    assert listed == [third.session_id, second.session_id]
    assert await manager.get_session(first.session_id) is None
    assert await manager.get_session(other.session_id) is not None


async def test_sm3_per_user_reject(harness: SessionHarness) -> None:
    """SM3: with policy reject the per-user cap refuses the user but not others."""
    manager = harness.manager(max_sessions=10, max_sessions_per_user=1, policy="reject")
    await manager.create_session("u")
    with pytest.raises(SessionLimitError, match="user 'u'"):
        await manager.create_session("u")
    assert await manager.create_session("w")


async def test_sm3_idle_sessions_do_not_count_against_the_cap(harness: SessionHarness) -> None:
    """SM3: sessions past their timeout leave room even before cleanup."""
    manager = harness.manager(max_sessions=2, policy="reject")
    await manager.create_session("u")
    await manager.create_session("u")
    await harness.advance(0.75)
    assert await manager.create_session("u")
    assert await manager.create_session("u")


@pytest.mark.parametrize("policy", ["evict_oldest", "reject"])
async def test_sm3_100_concurrent_creates_never_exceed_the_cap(
    harness: SessionHarness, policy: str
) -> None:
    """SM3: 100 concurrent creates on separate managers leave exactly the cap live."""
    managers = [
        harness.manager(max_sessions=10, policy=policy, session_timeout=30) for _ in range(4)
    ]
    results = await asyncio.gather(
        *(managers[i % 4].create_session(f"user{i % 7}") for i in range(100)),
        return_exceptions=True,
    )
    refused = [r for r in results if isinstance(r, SessionLimitError)]
    assert all(
        not isinstance(r, BaseException) or isinstance(r, SessionLimitError) for r in results
    )
    live = 0
    for user in range(7):
        live += len(await managers[0].list_user_sessions(f"user{user}"))
    assert live == 10
    assert len(refused) == (90 if policy == "reject" else 0)


async def test_sm4_update_merges_and_returns_a_copy(harness: SessionHarness) -> None:
    """SM4: update merges top-level keys and returns a copy; mutating it changes nothing."""
    manager = harness.manager()
    session = await manager.create_session("u", {"a": 1, "b": {"c": [1, 2]}})
    updated = await manager.update_session(session.session_id, {"b": 2, "d": None})
    assert updated.metadata == {"a": 1, "b": 2, "d": None}
    updated.metadata["a"] = 99
    again = await manager.get_session(session.session_id)
    assert again is not None
    assert again.metadata == {"a": 1, "b": 2, "d": None}


async def test_sm4_update_of_missing_session_raises(harness: SessionHarness) -> None:
    """SM4: updating a session that never existed raises SessionNotFoundError."""
    manager = harness.manager()
    with pytest.raises(SessionNotFoundError, match="nope"):
        await manager.update_session("nope", {"a": 1})


async def test_sm5_cleanup_counts_removed_sessions_and_list_orders_by_activity(
    harness: SessionHarness,
) -> None:
    """SM5: cleanup returns how many idle sessions it removed; list is newest activity first."""
    manager = harness.manager()
    for _ in range(3):
        await manager.create_session("old")
    await harness.advance(0.75)
    first = await manager.create_session("new")
    second = await manager.create_session("new")
    await manager.get_session(first.session_id)
    assert await manager.cleanup_expired_sessions() == 3
    assert await manager.cleanup_expired_sessions() == 0
    assert [s.session_id for s in await manager.list_user_sessions("new")] == [
        first.session_id,
        second.session_id,
    ]


async def test_deleted_session_is_gone_and_delete_reports_liveness(
    harness: SessionHarness,
) -> None:
    """delete_session returns True once for a live session, then False."""
    manager = harness.manager()
    session = await manager.create_session("u")
    assert await manager.delete_session(session.session_id) is True
    assert await manager.delete_session(session.session_id) is False
    assert await manager.get_session(session.session_id) is None
    assert await manager.cleanup_expired_sessions() == 0


async def test_bad_input_is_refused_before_anything_is_stored(harness: SessionHarness) -> None:
    """A bad user id, non-JSON or oversized metadata is InvalidSessionError, nothing stored."""
    manager = harness.manager(max_metadata_bytes=100)
    with pytest.raises(InvalidSessionError, match="user_id"):
        await manager.create_session("")
    with pytest.raises(InvalidSessionError, match="user_id"):
        await manager.create_session("x" * 300)
    with pytest.raises(InvalidSessionError, match="JSON"):
        await manager.create_session("u", {"s": {1, 2}})
    with pytest.raises(InvalidSessionError, match="max_metadata_bytes"):
        await manager.create_session("u", {"big": "x" * 200})
    with pytest.raises(InvalidSessionError, match="session_id"):
        await manager.get_session("x" * 300)
    assert await manager.list_user_sessions("u") == []


async def test_shut_down_manager_refuses_calls(harness: SessionHarness) -> None:
    """After shutdown() every call raises BackendClosedError; shutdown is idempotent."""
    manager = harness.manager()
    await manager.initialize()
    await manager.shutdown()
    await manager.shutdown()
    with pytest.raises(BackendClosedError):
        await manager.create_session("u")


def test_config_refuses_bad_values() -> None:
    """SessionConfig names the bad field: timeout, caps, policy."""
    with pytest.raises(InvalidSessionError, match="session_timeout"):
        SessionConfig(session_timeout=0)
    with pytest.raises(InvalidSessionError, match="max_sessions"):
        SessionConfig(max_sessions=0)
    with pytest.raises(InvalidSessionError, match="policy"):
        SessionConfig(policy="random")  # type: ignore[arg-type]
