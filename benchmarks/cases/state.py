"""Case ``state``: the state backends against raw redis-py and the ``limits`` library.

Each figure is the median over small alternating chunks, so ours and its baselines see the
same machine conditions. Baselines:

- Redis rate limit: a raw ``EVALSHA`` of an equivalent sliding-window script via redis-py,
  and ``limits``' moving window on its async Redis storage (``implementation="redispy"``,
  the same client library as ours);
- lock pair: raw ``SET NX PX`` + compare-and-delete ``EVALSHA``, and redis-py's asyncio
  ``Lock`` (non-blocking, ``thread_local=False``);
- memory rate limit: ``limits``' moving window on its **async** ``MemoryStorage``. The async
  one is the fair comparison (our methods are coroutines too) and also the faster of the two
  here: the sync ``MemoryStorage`` takes a threading lock per hit.
"""

from __future__ import annotations

import asyncio
import statistics
import time
import tracemalloc
import uuid
from collections.abc import Awaitable, Callable

from limits import RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage as LimitsMemoryStorage
from limits.aio.storage import RedisStorage as LimitsRedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import MemoryStorage as SyncMemoryStorage
from limits.strategies import MovingWindowRateLimiter as SyncMovingWindowRateLimiter
from redis.asyncio import Redis
from redis.asyncio.lock import Lock

from app.state import InMemoryStateBackend, RedisStateBackend
from benchmarks.core import BenchConfig, Measurement, case

USERS = 1000
LIMIT = 100
WINDOW_S = 1.0

RAW_SLIDING_WINDOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
local count = redis.call('ZCARD', KEYS[1])
if count >= tonumber(ARGV[1]) then return {0, 0} end
redis.call('ZADD', KEYS[1], now, t[1] .. '.' .. t[2] .. '-' .. count)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return {1, tonumber(ARGV[1]) - count - 1}
"""
RAW_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

Op = Callable[[], Awaitable[object]]


def cycling(make: Callable[[str], Awaitable[object]]) -> Op:
    """An operation that calls ``make(user)`` for USERS users in turn."""
    users = [f"user{i}" for i in range(USERS)]
    position = 0

    def next_call() -> Awaitable[object]:
        nonlocal position
        position = (position + 1) % USERS
        return make(users[position])

    return next_call


async def interleaved(ops: dict[str, Op], count: int, chunk: int = 100) -> dict[str, float]:
    """Run the operations in alternating chunks until each did ``count``; median chunk ops/s.

    Small chunks, in an order rotated every round, expose ours and the baselines to the same
    load on a 2-core machine (the Redis server shares it); the median ignores hiccups.
    """
    for op in ops.values():  # warm-up: connections, scripts, caches
        for _ in range(200):
            await op()
    names = list(ops)
    rates: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(max(1, count // chunk)):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            op = ops[name]
            start = time.perf_counter()
            for _ in range(chunk):
                await op()
            rates[name].append(chunk / (time.perf_counter() - start))
    return {name: statistics.median(values) for name, values in rates.items()}


async def redis_cases(config: BenchConfig, prefix: str) -> list[Measurement]:
    count = 4_000 if config.quick else 10_000
    redis = Redis.from_url(config.redis_url)
    limits_storage = LimitsRedisStorage(
        config.redis_url.replace("redis://", "async+redis://"),
        implementation="redispy",
        key_prefix=f"{prefix}:limits",
    )
    try:
        ours = RedisStateBackend(redis, namespace=f"{prefix}:ours")
        raw_rate = await redis.script_load(RAW_SLIDING_WINDOW)
        raw_release = await redis.script_load(RAW_RELEASE)
        limiter = MovingWindowRateLimiter(limits_storage)
        item = RateLimitItemPerSecond(LIMIT, int(WINDOW_S))
        window_us, window_ms = int(WINDOW_S * 1e6), int(WINDOW_S * 1e3)

        rate = await interleaved(
            {
                "ours": cycling(lambda user: ours.rate_limit_check(user, LIMIT, WINDOW_S)),
                "raw": cycling(
                    lambda user: redis.evalsha(
                        raw_rate, 1, f"{prefix}:raw:{user}", LIMIT, window_us, window_ms
                    )
                ),
                "limits": cycling(lambda user: limiter.hit(item, user)),
            },
            count,
        )

        token = uuid.uuid4().hex

        async def ours_pair() -> None:
            assert await ours.acquire_lock("bench", 5, token)
            assert await ours.release_lock("bench", token)

        async def raw_pair() -> None:
            name = f"{prefix}:rawlock"
            assert await redis.set(name, token, nx=True, px=5000)
            assert await redis.evalsha(raw_release, 1, name, token)

        redis_py_lock = Lock(
            redis, f"{prefix}:pylock", timeout=5, blocking=False, thread_local=False
        )

        async def redis_py_pair() -> None:
            assert await redis_py_lock.acquire()
            await redis_py_lock.release()

        locks = await interleaved(
            {"ours": ours_pair, "raw": raw_pair, "redis-py": redis_py_pair}, count
        )
    finally:
        keys = [key async for key in redis.scan_iter(match=f"{prefix}:*", count=1000)]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()
    extra = {"users": USERS, "limit": LIMIT, "window_s": WINDOW_S, "count": count}
    return [
        Measurement(
            "state", "redis rate_limit_check", "checks/s", rate["ours"], rate["raw"],
            "raw EVALSHA sliding window", bar=0.9, extra=extra,
        ),
        Measurement(
            "state", "redis rate_limit_check", "checks/s", rate["ours"], rate["limits"],
            "limits moving window (redis)", bar=1.0, extra=extra,
        ),
        Measurement(
            "state", "redis lock acquire+release", "pairs/s", locks["ours"], locks["raw"],
            "SET NX PX + EVALSHA delete", bar=0.9,
        ),
        Measurement(
            "state", "redis lock acquire+release", "pairs/s", locks["ours"], locks["redis-py"],
            "redis-py asyncio Lock", bar=1.0,
        ),
    ]  # fmt: skip


async def memory_rate(config: BenchConfig) -> Measurement:
    count = 50_000 if config.quick else 300_000
    ours = InMemoryStateBackend()
    storage = LimitsMemoryStorage()
    limiter = MovingWindowRateLimiter(storage)
    item = RateLimitItemPerSecond(LIMIT, int(WINDOW_S))
    try:
        rate = await interleaved(
            {
                "ours": cycling(lambda user: ours.rate_limit_check(user, LIMIT, WINDOW_S)),
                "limits": cycling(lambda user: limiter.hit(item, user)),
            },
            count,
        )
    finally:
        await ours.close()
        if storage.timer is not None:
            storage.timer.cancel()
            await asyncio.wait([storage.timer])
    return Measurement(
        "state", "memory rate_limit_check", "checks/s", rate["ours"], rate["limits"],
        "limits moving window (async memory)", bar=1.0,
        extra={
            "users": USERS, "limit": LIMIT, "window_s": WINDOW_S, "count": count,
            "limits_sync_memory_checks_per_s": round(limits_sync_rate(count)),
        },
    )  # fmt: skip


def limits_sync_rate(count: int) -> float:
    """``limits``' sync moving window on its sync MemoryStorage, for the record (not a bar)."""
    limiter = SyncMovingWindowRateLimiter(SyncMemoryStorage())
    item = RateLimitItemPerSecond(LIMIT, int(WINDOW_S))
    users = [f"user{i}" for i in range(USERS)]
    start = time.perf_counter()
    for i in range(count):
        limiter.hit(item, users[i % USERS])
    return count / (time.perf_counter() - start)


async def memory_leftovers() -> Measurement:
    """10,000 users call once, one window passes idle, one sweep: what is left over.

    The figure is the number of rate-limit logs and timestamps still held. ``extra`` adds
    traced bytes (``bytes_after_sweep`` is mostly CPython's tuple and float free lists) and
    the sweep's duration, which tracemalloc slows down several times.
    """
    users, window = 10_000, 0.2
    ours = InMemoryStateBackend()
    tracemalloc.start()
    try:
        baseline = tracemalloc.get_traced_memory()[0]
        for i in range(users):
            await ours.rate_limit_check(f"idle{i}", 5, window)
        loaded = tracemalloc.get_traced_memory()[0]
        await asyncio.sleep(window * 1.25)
        start = time.perf_counter()
        removed = ours.sweep()
        sweep_ms = (time.perf_counter() - start) * 1000
        stats = ours.stats()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
        await ours.close()
    return Measurement(
        "state", "memory leftovers after idle window + sweep", "entries",
        stats["rate_limit_logs"] + stats["rate_limit_stamps"], check="<=", bar=0,
        extra={
            "users": users, "removed": removed, "sweep_ms_under_tracemalloc": round(sweep_ms, 2),
            "bytes_while_loaded": loaded - baseline, "bytes_after_sweep": after - baseline,
        },
    )  # fmt: skip


@case("state")
async def state(config: BenchConfig) -> list[Measurement]:
    prefix = f"bench:{uuid.uuid4().hex[:8]}"
    rows = await redis_cases(config, prefix)
    rows.append(await memory_rate(config))
    rows.append(await memory_leftovers())
    return rows
