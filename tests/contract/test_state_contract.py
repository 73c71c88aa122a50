"""Section A of docs/contracts/state.md: every numbered statement, against both state backends.

Each test runs once on ``InMemoryStateBackend`` (fake clock) and once on
``RedisStateBackend`` (the real Redis on loopback, an isolated namespace, two client
connections for the concurrency statements).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import numpy as np
import pytest
from redis.exceptions import ResponseError
from structlog.testing import capture_logs

from app.errors import BackendClosedError, StateBackendError
from app.state import InMemoryStateBackend, RedisStateBackend, StateBackend
from tests.contract.state_harness import BACKENDS, Harness, Kind, open_harness

MiB = 1024 * 1024


@pytest.fixture(params=BACKENDS)
def kind_and_url(request: pytest.FixtureRequest) -> tuple[Kind, str | None]:
    """The backend kind, and for Redis the URL (skips or fails when Redis is down)."""
    kind: Kind = request.param
    return kind, (request.getfixturevalue("redis_url") if kind == "redis" else None)


@pytest.fixture
async def h(kind_and_url: tuple[Kind, str | None], unique_name: str) -> AsyncIterator[Harness]:
    """A fresh backend of each kind in an isolated namespace, cleaned up afterwards."""
    kind, url = kind_and_url
    async with open_harness(kind, unique_name, url) as harness:
        yield harness


def all_calls(b: StateBackend) -> list[Callable[[], Awaitable[object]]]:
    """One call of every public method, with valid arguments."""
    return [
        lambda: b.rate_limit_check("u", 1, 1.0),
        lambda: b.acquire_lock("k"),
        lambda: b.release_lock("k"),
        lambda: b.extend_lock("k", 1.0),
        lambda: b.cache_embedding("h", [1.0]),
        lambda: b.get_cached_embedding("h"),
        lambda: b.set_session("s", {}),
        lambda: b.get_session("s"),
        lambda: b.delete_session("s"),
        lambda: b.set_value("k", 1),
        lambda: b.get_value("k"),
        lambda: b.delete("k"),
        lambda: b.increment("c"),
        b.ping,
    ]


def key_calls(b: StateBackend, key: Any) -> dict[str, Callable[[], Awaitable[object]]]:
    """Every method that takes a key, called with ``key``, by the argument's name."""
    return {
        "user_id": lambda: b.rate_limit_check(key, 1, 1.0),
        "scope": lambda: b.rate_limit_check("u", 1, 1.0, scope=key),
        "key": lambda: b.acquire_lock(key),
        "text_hash": lambda: b.cache_embedding(key, [1.0]),
        "session_id": lambda: b.get_session(key),
        "key ": lambda: b.set_value(key, 1),
        "key  ": lambda: b.increment(key),
    }


# -- General ------------------------------------------------------------------------------


async def test_s1_every_call_after_close_raises_and_close_is_idempotent(h: Harness) -> None:
    """S1: after close() every method raises BackendClosedError; a second close() is fine."""
    await h.backend.close()
    await h.backend.close()
    for call in all_calls(h.backend):
        with pytest.raises(BackendClosedError, match="closed"):
            await call()


@pytest.mark.parametrize(
    "bad",
    [None, 5, b"bytes", "", "x" * 1025, "é" * 513, "\ud800"],
    ids=["none", "int", "bytes", "empty", "1025-ascii", "1026-utf8", "lone-surrogate"],
)
async def test_s2_bad_keys_raise_value_error_naming_the_argument(h: Harness, bad: Any) -> None:
    """S2: keys are non-empty str of at most 1024 UTF-8 bytes, else ValueError naming the arg."""
    for arg, call in key_calls(h.backend, bad).items():
        with pytest.raises(ValueError, match=f"{arg.strip()} must be a non-empty str") as info:
            await call()
        assert type(bad).__name__ in str(info.value)
    assert await h.footprint() == 0


async def test_s2_keys_are_exact_unicode_and_literal(h: Harness) -> None:
    """S2: 1024-byte keys work, Unicode is not normalised, glob characters are literal."""
    b = h.backend
    longest = "é" * 512
    await b.set_value(longest, "long")
    assert await b.get_value(longest) == "long"
    composed, decomposed = "\u00e9", "e\u0301"
    await b.set_value(composed, 1)
    await b.set_value(decomposed, 2)
    assert (await b.get_value(composed), await b.get_value(decomposed)) == (1, 2)
    for literal in ["a*", "a?", "a[b]", "{a}", "a:b"]:
        await b.set_value(literal, literal)
    await b.set_value("ab", "plain")
    assert await b.delete("a*") is True
    assert await b.get_value("ab") == "plain"
    assert await b.get_value("a*") is None
    assert [await b.get_value(k) for k in ["a?", "a[b]", "{a}", "a:b"]] == [
        "a?", "a[b]", "{a}", "a:b",
    ]  # fmt: skip


async def test_s3_kinds_of_state_never_collide(h: Harness) -> None:
    """S3: a value, lock, session, embedding and rate log named "x" are five separate things."""
    b = h.backend
    await b.set_value("x", "value")
    assert await b.acquire_lock("x", 5)
    await b.set_session("x", {"session": True})
    await b.cache_embedding("x", [1.0, 2.0])
    assert await b.rate_limit_check("x", 1, 5.0, scope="x") == (True, 0)
    assert await b.delete("x") is True
    assert await b.get_session("x") == {"session": True}
    assert await b.get_cached_embedding("x") == [1.0, 2.0]
    assert await b.acquire_lock("x", 5) is False
    assert await b.rate_limit_check("x", 1, 5.0, scope="x") == (False, 0)
    assert await h.footprint() == 4
    if h.redis is not None:
        assert all(key.startswith(f"{h.namespace}:".encode()) for key in await h.raw_keys())


async def test_s4_values_are_copied_in_and_out(h: Harness) -> None:
    """S4: mutating the argument after the call, or a returned value, never changes the store."""
    b = h.backend
    value: dict[str, Any] = {"list": [1, 2], "nested": {"a": 1}}
    await b.set_value("v", value)
    value["list"].append(3)
    first = await b.get_value("v")
    assert first == {"list": [1, 2], "nested": {"a": 1}}
    first["nested"]["a"] = 99
    second = await b.get_value("v")
    assert second == {"list": [1, 2], "nested": {"a": 1}}
    assert second is not first
    session: dict[str, Any] = {"cart": ["a"]}
    await b.set_session("s", session)
    session["cart"].append("b")
    got = await b.get_session("s")
    assert got == {"cart": ["a"]}
    assert got is not None
    got["cart"].clear()
    assert await b.get_session("s") == {"cart": ["a"]}


# -- Values and counters ------------------------------------------------------------------


async def test_k1_json_values_round_trip_and_bad_values_are_rejected(h: Harness) -> None:
    """K1: JSON round trip (tuples become lists); None -> ValueError; bad types -> TypeError."""
    b = h.backend
    await b.set_value("t", (1, "two", [3.5, True]))
    assert await b.get_value("t") == [1, "two", [3.5, True]]
    await b.set_value("keep", {"old": 1})
    with pytest.raises(ValueError, match="value must not be None"):
        await b.set_value("keep", None)
    with pytest.raises(TypeError, match="value must be JSON-serialisable, got object"):
        await b.set_value("keep", object())
    with pytest.raises(TypeError, match="value must be JSON-serialisable, got set"):
        await b.set_value("keep", {1, 2})
    with pytest.raises(ValueError, match="value must be JSON-serialisable"):
        await b.set_value("keep", [math.nan])
    assert await b.get_value("keep") == {"old": 1}


@pytest.mark.parametrize("bad", [0, -1, 0.0, math.nan, math.inf, -math.inf, "5", True])
async def test_k2_bad_ttl_raises_value_error_and_changes_nothing(h: Harness, bad: Any) -> None:
    """K2: ttl <= 0, NaN, inf (or not a number) -> ValueError naming ttl; nothing is stored."""
    b = h.backend
    await b.set_value("k", "old")
    await b.set_session("s", {"old": True})
    calls: list[Callable[[], Awaitable[object]]] = [
        lambda: b.set_value("k", "new", ttl=bad),
        lambda: b.set_session("s", {"new": True}, ttl=bad),
        lambda: b.cache_embedding("e", [1.0], ttl=bad),
        lambda: b.increment("c", ttl=bad),
    ]
    for call in calls:
        with pytest.raises(ValueError, match="ttl must be a finite number of seconds > 0 and <= "):
            await call()
    assert await b.get_value("k") == "old"
    assert await b.get_session("s") == {"old": True}
    assert await b.get_cached_embedding("e") is None
    assert await b.get_value("c") is None


async def test_k2_ttl_none_never_expires_and_ttl_has_millisecond_resolution(h: Harness) -> None:
    """K2: ttl=None keeps the key; a 0.05 s ttl has expired 0.15 s later."""
    b = h.backend
    await b.set_value("forever", 1)
    await b.set_value("short", 1, ttl=0.05)
    await b.set_value("longer", 1, ttl=5)
    await h.advance(0.15)
    assert await b.get_value("forever") == 1
    assert await b.get_value("short") is None
    assert await b.get_value("longer") == 1


async def test_k3_missing_and_expired_keys_read_as_none_without_any_timer(h: Harness) -> None:
    """K3: a missing key reads None; an expired one too, with no sweep having run."""
    b = h.backend
    assert await b.get_value("never-set") is None
    await b.set_value("k", "v", ttl=0.1)
    assert await b.get_value("k") == "v"
    await h.advance(0.15)
    assert await b.get_value("k") is None


async def test_k4_set_replaces_value_and_ttl(h: Harness) -> None:
    """K4: set_value on an existing key replaces the value and the TTL; None clears the TTL."""
    b = h.backend
    await b.set_value("k", 1, ttl=0.1)
    await b.set_value("k", 2)
    await b.set_value("j", 1)
    await b.set_value("j", 2, ttl=0.1)
    await h.advance(0.15)
    assert await b.get_value("k") == 2
    assert await b.get_value("j") is None


async def test_k5_delete_reports_whether_a_live_key_was_removed(h: Harness) -> None:
    """K5: delete is True for a live key, False for a missing or an expired one."""
    b = h.backend
    await b.set_value("live", 1)
    await b.set_value("expired", 1, ttl=0.05)
    await h.advance(0.1)
    assert await b.delete("live") is True
    assert await b.delete("live") is False
    assert await b.delete("missing") is False
    assert await b.delete("expired") is False


async def test_k6_increment_semantics(h: Harness) -> None:
    """K6: starts at 0, negative amounts work, ttl only on creation, non-integers -> TypeError."""
    b = h.backend
    assert await b.increment("c") == 1
    assert await b.increment("c", 5) == 6
    assert await b.increment("c", -10) == -4
    assert await b.get_value("c") == -4
    assert await b.increment("t", 2, ttl=0.1) == 2
    assert await b.increment("t", 1, ttl=60) == 3
    await h.advance(0.15)
    assert await b.get_value("t") is None
    for stored in [1.5, "7", [1], True]:
        await b.set_value("bad", stored)
        with pytest.raises(TypeError, match="must be a signed 64-bit int to increment"):
            await b.increment("bad")
        assert await b.get_value("bad") == stored
    with pytest.raises(TypeError, match="amount must be an int, got float"):
        await b.increment("c", 1.5)  # type: ignore[arg-type]
    await b.set_value("max", 2**63 - 1)
    with pytest.raises(ValueError, match="would overflow"):
        await b.increment("max")
    assert await b.get_value("max") == 2**63 - 1


async def test_k6_concurrent_increments_are_atomic(h: Harness) -> None:
    """K6: 200 concurrent increments (two connections for Redis) return exactly {1..200}."""
    first, second = h.peers()
    results = await asyncio.gather(
        *((first if i % 2 else second).increment("n") for i in range(200))
    )
    assert sorted(results) == list(range(1, 201))
    assert await h.backend.get_value("n") == 200


async def test_k7_values_over_max_value_bytes_are_rejected(h: Harness) -> None:
    """K7: an encoded value over 1 MiB -> ValueError; exactly 1 MiB is accepted."""
    b = h.backend
    await b.set_value("k", "old")
    with pytest.raises(ValueError, match="more than max_value_bytes=1048576"):
        await b.set_value("k", "x" * MiB)
    with pytest.raises(ValueError, match="more than max_value_bytes"):
        await b.set_session("s", {"x": "y" * MiB})
    assert await b.get_value("k") == "old"
    assert await b.get_session("s") is None
    await b.set_value("k", "x" * (MiB - 2))  # two quotes make exactly 1 MiB
    assert await b.get_value("k") == "x" * (MiB - 2)


# -- Rate limiting ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("limit", "window", "arg"),
    [
        (-1, 1.0, "limit"),
        (True, 1.0, "limit"),
        (1.5, 1.0, "limit"),
        ("3", 1.0, "limit"),
        (None, 1.0, "limit"),
        (3, 0, "window_seconds"),
        (3, -1.0, "window_seconds"),
        (3, math.nan, "window_seconds"),
        (3, math.inf, "window_seconds"),
        (3, "1", "window_seconds"),
        (3, True, "window_seconds"),
    ],
)
async def test_r1_bad_limit_or_window_raises_value_error(
    h: Harness, limit: Any, window: Any, arg: str
) -> None:
    """R1: limit an int >= 0 (not bool), window a finite number > 0; else ValueError naming it."""
    with pytest.raises(ValueError, match=f"{arg} must be") as info:
        await h.backend.rate_limit_check("u", limit, window)
    assert type(limit if arg == "limit" else window).__name__ in str(info.value)
    assert await h.footprint() == 0


async def test_r2_limit_zero_denies_and_stores_nothing(h: Harness) -> None:
    """R2: limit 0 returns (False, 0) and records nothing."""
    assert await h.backend.rate_limit_check("u", 0, 1.0) == (False, 0)
    assert await h.footprint() == 0
    assert await h.backend.rate_limit_check("u", 1, 1.0) == (True, 0)


async def test_r3_counts_allowed_calls_and_does_not_record_denials(h: Harness) -> None:
    """R3: L=3 gives (T,2) (T,1) (T,0) (F,0) (F,0); a denied call is not recorded."""
    b = h.backend
    results = [await b.rate_limit_check("u", 3, 10.0) for _ in range(5)]
    assert results == [(True, 2), (True, 1), (True, 0), (False, 0), (False, 0)]
    assert await b.rate_limit_check("v", 1, 1.0) == (True, 0)
    await h.advance(0.6)
    assert await b.rate_limit_check("v", 1, 1.0) == (False, 0)
    await h.advance(0.5)  # 1.1 s after the allowed call, 0.5 s after the denied one
    assert await b.rate_limit_check("v", 1, 1.0) == (True, 0)


async def test_r4_concurrent_checks_allow_exactly_the_limit(h: Harness) -> None:
    """R4: 50 concurrent calls with L=7 (two connections for Redis) allow exactly 7."""
    first, second = h.peers()
    results = await asyncio.gather(
        *((first if i % 2 else second).rate_limit_check("u", 7, 10.0) for i in range(50))
    )
    allowed = [remaining for ok, remaining in results if ok]
    assert sorted(allowed) == [0, 1, 2, 3, 4, 5, 6]
    assert [remaining for ok, remaining in results if not ok] == [0] * 43


async def test_r5_the_window_slides(h: Harness) -> None:
    """R5: L=2, w=1 s: allowed at 0 and 0.5, denied at 0.9, allowed at 1.05, denied at 1.2."""
    b = h.backend
    timeline = []
    for step in [0.0, 0.5, 0.4, 0.15, 0.15]:
        await h.advance(step)
        timeline.append((await b.rate_limit_check("u", 2, 1.0))[0])
    assert timeline == [True, True, False, True, False]


async def test_r6_users_scopes_and_windows_are_independent(h: Harness) -> None:
    """R6: state is keyed by (scope, user_id, window_seconds), even with ':' in the names."""
    b = h.backend
    assert await b.rate_limit_check("u", 1, 5.0) == (True, 0)
    assert await b.rate_limit_check("u", 1, 5.0) == (False, 0)
    assert await b.rate_limit_check("w", 1, 5.0) == (True, 0)
    assert await b.rate_limit_check("u", 1, 5.0, scope="other") == (True, 0)
    assert await b.rate_limit_check("u", 1, 6.0) == (True, 0)
    assert await b.rate_limit_check("c", 1, 5.0, scope="a:b") == (True, 0)
    assert await b.rate_limit_check("b:c", 1, 5.0, scope="a") == (True, 0)
    assert await b.rate_limit_check("u", 1, 5, scope="default") == (False, 0)


async def test_r7_client_wall_clock_changes_never_change_a_decision(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """R7: moving the client's wall clock (time.time) an hour either way changes nothing."""
    b = h.backend
    real = time.time
    assert await b.rate_limit_check("u", 1, 1.0) == (True, 0)
    monkeypatch.setattr(time, "time", lambda: real() + 3600)
    assert await b.rate_limit_check("u", 1, 1.0) == (False, 0)
    monkeypatch.setattr(time, "time", lambda: real() - 3600)
    assert await b.rate_limit_check("v", 1, 0.2) == (True, 0)
    await h.advance(0.25)
    assert await b.rate_limit_check("v", 1, 0.2) == (True, 0)


async def test_r8_logs_are_bounded_and_idle_users_leave_nothing(h: Harness) -> None:
    """R8: at most `limit` entries per key; 10,000 users, a window of idleness, a sweep: empty."""
    b = h.backend
    for _ in range(5):
        await b.rate_limit_check("bounded", 10, 60.0)
    # a smaller limit trims to the newest two; the 60 s window outlives the 10,000 calls
    # below even on a loaded machine (at 5 s it expired before the final count)
    await b.rate_limit_check("bounded", 2, 60.0)
    if isinstance(b, InMemoryStateBackend):
        assert b.stats()["rate_limit_stamps"] == 2
    else:
        assert h.redis is not None
        (key,) = await h.raw_keys()
        assert await h.redis.zcard(key) == 2
        assert 0 < await h.redis.pttl(key) <= 60_000
    for start in range(0, 10_000, 50):
        await asyncio.gather(
            *(b.rate_limit_check(f"user{i}", 3, 0.2) for i in range(start, start + 50))
        )
    stored = await h.footprint()
    # with real time (Redis) the first users' keys may already have expired by now
    assert stored == 10_001 if h.clock is not None else 1 < stored <= 10_001
    await h.advance(0.3)
    await h.settle()
    assert await h.footprint() == 1  # only "bounded", whose window is 60 s


async def test_r9_calls_in_the_same_instant_both_count(h: Harness) -> None:
    """R9: calls at the same clock reading each count (Redis: many calls per microsecond)."""
    results = await asyncio.gather(*(h.backend.rate_limit_check("u", 100, 10.0) for _ in range(40)))
    assert sorted(remaining for _, remaining in results) == list(range(60, 100))
    assert await h.backend.rate_limit_check("u", 41, 10.0) == (True, 0)


# -- Locks --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ttl", "owner", "arg"),
    [
        (0.0009, None, "ttl_seconds"),
        (0, None, "ttl_seconds"),
        (-1, None, "ttl_seconds"),
        (math.nan, None, "ttl_seconds"),
        (math.inf, None, "ttl_seconds"),
        ("1", None, "ttl_seconds"),
        (None, None, "ttl_seconds"),
        (1.0, "", "owner"),
        (1.0, 5, "owner"),
    ],
)
async def test_l1_bad_lock_arguments_raise_value_error(
    h: Harness, ttl: Any, owner: Any, arg: str
) -> None:
    """L1: ttl_seconds finite and >= 0.001, owner a non-empty str or None; else ValueError."""
    b = h.backend
    calls: list[Callable[[], Awaitable[object]]] = [
        lambda: b.acquire_lock("k", ttl, owner),
        lambda: b.extend_lock("k", ttl, owner),
    ]
    if arg == "owner":
        calls.append(lambda: b.release_lock("k", owner))
    for call in calls:
        with pytest.raises(ValueError, match=f"{arg} must be"):
            await call()
    assert await h.footprint() == 0


async def test_l1_acquire_never_blocks(h: Harness) -> None:
    """L1: acquiring a held lock returns False at once instead of waiting."""
    assert await h.backend.acquire_lock("k", 30, "a")
    assert await asyncio.wait_for(h.backend.acquire_lock("k", 30, "b"), timeout=1.0) is False


async def test_l2_owner_none_is_the_backend_identity(h: Harness) -> None:
    """L2: owner=None is the instance's own random identity, different for another instance."""
    b = h.backend
    other = h.sibling()
    assert isinstance(b, InMemoryStateBackend | RedisStateBackend)
    assert isinstance(other, InMemoryStateBackend | RedisStateBackend)
    assert b.identity != other.identity
    assert await b.acquire_lock("k", 5)
    assert await b.release_lock("k", owner="someone-else") is False
    assert await other.release_lock("k") is False
    assert await b.release_lock("k", owner=b.identity) is True


async def test_l3_exactly_one_of_100_concurrent_acquirers_wins(h: Harness) -> None:
    """L3: 100 concurrent acquires with distinct owners (two connections for Redis): one wins."""
    first, second = h.peers()
    results = await asyncio.gather(
        *((first if i % 2 else second).acquire_lock("k", 5, f"owner{i}") for i in range(100))
    )
    assert results.count(True) == 1
    winner = f"owner{results.index(True)}"
    assert await h.backend.release_lock("k", winner) is True


async def test_l4_not_reentrant_and_ttl_unchanged(h: Harness) -> None:
    """L4: the holder's second acquire is False and does not extend the lease."""
    b = h.backend
    assert await b.acquire_lock("k", 0.3, "a") is True
    await h.advance(0.2)
    assert await b.acquire_lock("k", 0.3, "a") is False
    await h.advance(0.15)
    assert await b.acquire_lock("k", 0.3, "b") is True


async def test_l5_an_expired_lease_can_be_taken(h: Harness) -> None:
    """L5: after the TTL passes without extend or release, another owner acquires."""
    b = h.backend
    assert await b.acquire_lock("k", 0.1, "a") is True
    assert await b.acquire_lock("k", 0.1, "b") is False
    await h.advance(0.15)
    assert await b.acquire_lock("k", 0.1, "b") is True


async def test_l6_only_the_owner_releases(h: Harness) -> None:
    """L6: a non-owner's release is False and the lock stays; free or expired locks give False."""
    b = h.backend
    assert await b.release_lock("free", "a") is False
    assert await b.acquire_lock("k", 5, "a")
    assert await b.release_lock("k", "b") is False
    assert await b.acquire_lock("k", 5, "b") is False
    assert await b.release_lock("k", "a") is True
    assert await b.acquire_lock("e", 0.05, "a")
    await h.advance(0.1)
    assert await b.release_lock("e", "a") is False


async def test_l7_a_stale_owner_cannot_release_the_new_owners_lock(h: Harness) -> None:
    """L7: A's lease expires, B acquires, A's release is False and B still holds the lock."""
    b = h.backend
    assert await b.acquire_lock("k", 0.2, "A")
    await h.advance(0.25)
    assert await b.acquire_lock("k", 5, "B")
    assert await b.release_lock("k", "A") is False
    assert await b.acquire_lock("k", 5, "C") is False
    assert await b.release_lock("k", "B") is True


async def test_l8_extend_sets_the_remaining_ttl_for_the_owner_only(h: Harness) -> None:
    """L8: only the owner of a live lock extends; the remaining TTL becomes ttl_seconds."""
    b = h.backend
    assert await b.extend_lock("free", 1, "a") is False
    assert await b.acquire_lock("k", 0.2, "a")
    assert await b.extend_lock("k", 5, "b") is False
    await h.advance(0.1)
    assert await b.extend_lock("k", 0.5, "a") is True
    await h.advance(0.25)  # past the original lease, within the extension
    assert await b.acquire_lock("k", 1, "b") is False
    assert await b.extend_lock("k", 0.05, "a") is True  # extend may also shorten
    await h.advance(0.1)
    assert await b.extend_lock("k", 5, "a") is False
    assert await b.acquire_lock("k", 1, "b") is True


async def test_l9_a_cancelled_release_leaves_a_consistent_lock(h: Harness) -> None:
    """L9: cancelled mid-release, the lock is released or still ours; a retry releases it."""
    b = h.backend
    for yields in range(4):
        assert await b.acquire_lock("k", 5, "a")
        task = asyncio.create_task(b.release_lock("k", "a"))
        for _ in range(yields):
            await asyncio.sleep(0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        held = not await b.acquire_lock("k", 5, "probe")  # if free, the probe takes it
        if held:
            assert await b.release_lock("k", "a") is True  # the retry releases it
            assert await b.acquire_lock("k", 5, "probe") is True
        else:
            assert await b.release_lock("k", "a") is False  # released already: nothing to do
        assert await b.release_lock("k", "probe") is True


async def test_l10_lock_state_is_invisible_to_the_value_api(h: Harness) -> None:
    """L10: a held lock "k" is no value "k": get is None, delete False, increment starts at 1."""
    b = h.backend
    assert await b.acquire_lock("k", 5, "a")
    assert await b.get_value("k") is None
    assert await b.delete("k") is False
    assert await b.increment("k") == 1
    assert await b.acquire_lock("k", 5, "b") is False
    assert await b.release_lock("k", "a") is True


# -- Embedding cache ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("vector", "error", "message"),
    [
        ([], ValueError, "must not be empty"),
        ([1.0, math.nan], ValueError, "must be finite, got nan at index 1"),
        ([math.inf], ValueError, "must be finite"),
        ([1e39], ValueError, "must fit in float32"),
        ([[1.0, 2.0]], ValueError, "must be 1-D"),
        (np.zeros((2, 2)), ValueError, "must be 1-D"),
        ([1.0, "2"], TypeError, "must be real numbers"),
        ([True], TypeError, "must be real numbers"),
        ("abc", TypeError, "must be a sequence or 1-D array"),
        (None, TypeError, "must be a sequence or 1-D array"),
        (3.0, TypeError, "must be a sequence or 1-D array"),
    ],
)
async def test_e1_bad_vectors_are_rejected(
    h: Harness, vector: Any, error: type[Exception], message: str
) -> None:
    """E1: a non-empty 1-D sequence of finite numbers; NaN/inf -> ValueError; nothing stored."""
    with pytest.raises(error, match=message):
        await h.backend.cache_embedding("h", vector)
    assert await h.backend.get_cached_embedding("h") is None


async def test_e2_vectors_are_stored_as_float32(h: Harness) -> None:
    """E2: [0.1] comes back as [0.10000000149011612]; a numpy array is accepted too."""
    await h.backend.cache_embedding("h", [0.1])
    assert await h.backend.get_cached_embedding("h") == [0.10000000149011612]
    await h.backend.cache_embedding("n", np.array([1, 2, 3], dtype=np.int64))
    assert await h.backend.get_cached_embedding("n") == [1.0, 2.0, 3.0]


async def test_e3_length_is_preserved_and_corruption_reads_as_none(h: Harness) -> None:
    """E3: 8192 dimensions round-trip; a corrupt blob reads None with a warning."""
    vector = np.random.default_rng(3).standard_normal(8192).astype(np.float32)
    await h.backend.cache_embedding("big", vector)
    got = await h.backend.get_cached_embedding("big")
    assert got is not None
    assert len(got) == 8192
    assert np.array_equal(np.asarray(got, dtype=np.float32), vector)
    await h.backend.cache_embedding("c", [1.0, 2.0])
    for blob in [
        b"",
        b"\x02\x00\x00\x00\x00\x00\x80?",
        b"\x01\x00",
        b"\x01\x00\x00\x00\x00\x00\xc0\x7f",
    ]:
        await h.corrupt_embedding("c", blob)
        with capture_logs() as logs:
            assert await h.backend.get_cached_embedding("c") is None
        assert [entry["event"] for entry in logs] == ["state.embedding_corrupt"]
        assert logs[0]["log_level"] == "warning"


async def test_e4_ttl_missing_and_copies(h: Harness) -> None:
    """E4: embeddings expire like values, a missing one is None, the returned list is a copy."""
    b = h.backend
    assert await b.get_cached_embedding("missing") is None
    await b.cache_embedding("short", [1.0], ttl=0.05)
    await b.cache_embedding("kept", [1.0, 2.0], ttl=None)
    await h.advance(0.1)
    assert await b.get_cached_embedding("short") is None
    got = await b.get_cached_embedding("kept")
    assert got == [1.0, 2.0]
    assert got is not None
    got.append(3.0)
    assert await b.get_cached_embedding("kept") == [1.0, 2.0]


# -- Sessions -----------------------------------------------------------------------------


async def test_ss1_sessions_behave_like_values_in_their_own_namespace(h: Harness) -> None:
    """SS1: set/get/delete with K2-K5 semantics, separate from values; only dicts accepted."""
    b = h.backend
    assert await b.get_session("s") is None
    await b.set_session("s", {"user": 1, "tags": ("a",)})
    assert await b.get_session("s") == {"user": 1, "tags": ["a"]}
    assert await b.get_value("s") is None
    for bad in [None, [1], "text"]:
        with pytest.raises(TypeError, match="data must be a dict"):
            await b.set_session("s", bad)  # type: ignore[arg-type]
    assert await b.get_session("s") == {"user": 1, "tags": ["a"]}
    await b.set_session("s", {"v": 2}, ttl=0.1)
    await b.set_session("s", {"v": 3})  # ttl=None clears the old TTL
    await b.set_session("e", {"v": 1}, ttl=0.05)
    await h.advance(0.15)
    assert await b.get_session("s") == {"v": 3}
    assert await b.get_session("e") is None
    assert await b.delete_session("e") is False
    assert await b.delete_session("s") is True
    assert await b.delete_session("s") is False


async def test_ss1_reads_refresh_the_ttl_only_with_touch(h: Harness) -> None:
    """SS1: a plain read keeps the TTL running; touch=True renews it to the stored TTL."""
    b = h.backend
    await b.set_session("plain", {"a": 1}, ttl=0.3)
    await b.set_session("touched", {"a": 1}, ttl=0.3)
    await h.advance(0.2)
    assert await b.get_session("plain") == {"a": 1}
    assert await b.get_session("touched", touch=True) == {"a": 1}
    await h.advance(0.2)
    assert await b.get_session("plain") is None
    assert await b.get_session("touched") == {"a": 1}
    await h.advance(0.15)
    assert await b.get_session("touched") is None


# -- Caps on durations and counts (K2, R1, L1: what both backends can represent) ----------

# Durations (ttl, ttl_seconds, window_seconds) are capped at 2**53 ms in whole seconds, about
# 285,000 years: the expiry in milliseconds stays an exact float and far below Redis' limit of
# 2**63 ms from now. Rate limits are capped at 2**53 - 1, the largest count Lua keeps exact.
MAX_SECONDS = 2**53 // 1000
MAX_LIMIT = 2**53 - 1
MAX_SECONDS_TEXT = f"<= {MAX_SECONDS}"


def capped_calls(
    b: StateBackend, value: Any
) -> dict[str, tuple[str, Callable[[], Awaitable[object]]]]:
    """Every call with a capped duration or count, given ``value`` there: id -> (arg, call)."""
    return {
        "set_value": ("ttl", lambda: b.set_value("k", "new", ttl=value)),
        "set_session": ("ttl", lambda: b.set_session("s", {"new": True}, ttl=value)),
        "cache_embedding": ("ttl", lambda: b.cache_embedding("e", [1.0], ttl=value)),
        "increment": ("ttl", lambda: b.increment("c", 5, ttl=value)),
        "acquire_lock": ("ttl_seconds", lambda: b.acquire_lock("l", value, "a")),
        "extend_lock": ("ttl_seconds", lambda: b.extend_lock("l", value, "a")),
        "rate_limit_window": ("window_seconds", lambda: b.rate_limit_check("u", 3, value)),
    }


@pytest.mark.parametrize(
    "call_id",
    [
        "set_value",
        "set_session",
        "cache_embedding",
        "increment",
        "acquire_lock",
        "extend_lock",
        "rate_limit_window",
    ],
)
@pytest.mark.parametrize(
    "too_long",
    [MAX_SECONDS + 1, MAX_SECONDS + 0.5, 1e17, 2**70, 1.7e308],
    ids=["max+1", "max+0.5", "1e17", "2**70", "1.7e308"],
)
async def test_caps_too_long_durations_are_refused_and_store_nothing(
    h: Harness, call_id: str, too_long: Any
) -> None:
    """K2/L1/R1 caps: a duration over 2**53 ms -> ValueError naming arg, bound, value; no write."""
    arg, call = capped_calls(h.backend, too_long)[call_id]
    with pytest.raises(ValueError, match=f"^{arg} must be a finite number") as info:
        await call()
    message = str(info.value)
    assert message.startswith(f"{arg} must be a finite number"), message
    assert MAX_SECONDS_TEXT in message
    assert message.endswith(f"got {type(too_long).__name__} {too_long!r}"), message
    assert await h.footprint() == 0


@pytest.mark.parametrize("too_many", [MAX_LIMIT + 1, 2**63, 2**70], ids=["max+1", "2**63", "2**70"])
async def test_caps_too_large_limits_are_refused_and_store_nothing(
    h: Harness, too_many: int
) -> None:
    """R1 cap: limit over 2**53 - 1 -> ValueError naming limit, the bound and the value."""
    with pytest.raises(ValueError, match=r"^limit must be an int >= 0") as info:
        await h.backend.rate_limit_check("u", too_many, 1.0)
    message = str(info.value)
    assert message.startswith("limit must be an int >= 0"), message
    assert f"<= {MAX_LIMIT}" in message
    assert message.endswith(f"got int {too_many}"), message
    assert await h.footprint() == 0


async def test_caps_refusals_keep_what_was_stored(h: Harness) -> None:
    """A refused too-long ttl changes no stored value, session, counter or lease."""
    b = h.backend
    await b.set_value("k", "old")
    await b.set_session("s", {"old": True})
    assert await b.increment("c", 1, ttl=0.3) == 1
    assert await b.acquire_lock("l", 0.3, "a")
    for _, call in capped_calls(b, 1e17).values():
        with pytest.raises(ValueError, match=MAX_SECONDS_TEXT):
            await call()
    assert await b.get_value("k") == "old"
    assert await b.get_session("s") == {"old": True}
    assert await b.get_value("c") == 1
    assert await b.acquire_lock("l", 1, "b") is False
    await h.advance(0.35)  # the refused extend_lock did not lengthen the 0.3 s lease
    assert await b.get_value("c") is None
    assert await b.acquire_lock("l", 1, "b") is True


async def test_caps_the_largest_allowed_values_work(h: Harness) -> None:
    """The maxima are usable: max ttl / lease / window store and read back, max limit counts."""
    b = h.backend
    for longest in (MAX_SECONDS, float(MAX_SECONDS)):
        await b.set_value("k", {"v": 1}, ttl=longest)
        assert await b.get_value("k") == {"v": 1}
    await b.set_session("s", {"a": 1}, ttl=MAX_SECONDS)
    assert await b.get_session("s", touch=True) == {"a": 1}
    assert await b.get_session("s") == {"a": 1}
    await b.cache_embedding("e", [0.5], ttl=MAX_SECONDS)
    assert await b.get_cached_embedding("e") == [0.5]
    assert await b.increment("c", 5, ttl=MAX_SECONDS) == 5
    assert await b.increment("c", 1, ttl=MAX_SECONDS) == 6
    assert await b.get_value("c") == 6
    assert await b.increment("lo", -(2**63)) == -(2**63)
    assert await b.increment("hi", 2**63 - 1) == 2**63 - 1
    assert await b.acquire_lock("l", MAX_SECONDS, "a") is True
    assert await b.extend_lock("l", MAX_SECONDS, "a") is True
    assert await b.acquire_lock("l", 1, "b") is False
    assert await b.rate_limit_check("u", MAX_LIMIT, MAX_SECONDS) == (True, MAX_LIMIT - 1)
    assert await b.rate_limit_check("u", MAX_LIMIT, MAX_SECONDS) == (True, MAX_LIMIT - 2)
    assert await b.rate_limit_check("w", 2, MAX_SECONDS) == (True, 1)
    if h.redis is not None:  # every key got its expiry (none left without one)
        ttls = {key: await h.redis.pttl(key) for key in await h.raw_keys()}
        bare = {f"{h.namespace}:v:{name}".encode() for name in ("lo", "hi")}
        assert all(ttl == -1 for key, ttl in ttls.items() if key in bare)
        expiring = [ttl for key, ttl in ttls.items() if key not in bare]
        assert len(expiring) == 7
        assert all(MAX_SECONDS * 1000 - 60_000 < ttl <= MAX_SECONDS * 1000 for ttl in expiring)
    else:  # the fake clock can run to the end of the longest ttl
        await h.advance(MAX_SECONDS + 1)
        assert await b.get_value("k") is None
        assert await b.get_session("s") is None
        assert await b.get_cached_embedding("e") is None
        assert await b.get_value("c") is None
        assert await b.get_value("hi") == 2**63 - 1
        assert await b.acquire_lock("l", 1, "b") is True
        assert await b.rate_limit_check("u", 1, MAX_SECONDS) == (True, 0)


def test_caps_are_the_documented_constants() -> None:
    """The validation module exports the caps the tests above assume."""
    from app.state import validation

    assert validation.MAX_DURATION_SECONDS == MAX_SECONDS
    assert validation.MAX_LIMIT == MAX_LIMIT
    assert (MAX_SECONDS * 1000) < 2**53  # the longest expiry in ms is an exact float


# -- Redis reply errors (RedisStateBackend only) ------------------------------------------


async def test_increment_maps_only_a_non_integer_reply_to_type_error(
    redis_url: str, unique_name: str
) -> None:
    """A reply error other than "not an integer" (here WRONGTYPE) is a StateBackendError."""
    async with open_harness("redis", unique_name, redis_url) as h:
        assert h.redis is not None
        raw = f"{unique_name}:v:k"
        await h.redis.hset(raw, "field", "1")
        with pytest.raises(StateBackendError, match="WRONGTYPE") as info:
            await h.backend.increment("k")
        assert not isinstance(info.value, TypeError)
        assert isinstance(info.value.__cause__, ResponseError)
        assert await h.redis.hgetall(raw) == {b"field": b"1"}
        with pytest.raises(StateBackendError, match="WRONGTYPE"):
            await h.backend.get_value("k")
