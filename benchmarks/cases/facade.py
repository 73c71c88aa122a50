"""DataLayer hands out native clients as they are; health() costs about one slowest ping."""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path

import asyncpg
import redis.asyncio as aioredis

from app.backends.postgres import pool_options
from app.backends.redis import redis_pool
from app.facade import DataLayer
from benchmarks.cases.lifecycle import delete_bus_topology
from benchmarks.core import BenchConfig, Measurement, case, ops_per_second
from containers.units import PINGS
from settings import load_settings


async def timed_ms(operation: Callable[[], Awaitable[object]], rounds: int) -> list[float]:
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        await operation()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


ROUNDS = 7


@case("facade")
async def facade_case(config: BenchConfig) -> list[Measurement]:
    count = 1_000 if config.quick else 3_000
    rounds = 50 if config.quick else 300
    name = "bench.facade"
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(
            deployment_mode="distributed",
            event_bus="rabbitmq",
            redis={"url": config.redis_url},
            postgres={"dsn": config.postgres_dsn},
            rabbitmq={"url": config.rabbitmq_url, "exchange": name},
            state={"namespace": name},
            faiss={"index_path": Path(tmp) / "faiss", "dimension": 8},
            log={"level": "WARNING"},
        )
        # Made directly with the same options as the resources, so only the hand-out differs.
        raw_pool = await asyncpg.create_pool(config.postgres_dsn, **pool_options(settings.postgres))
        raw_redis = aioredis.Redis.from_pool(redis_pool(settings.redis))
        key = f"{name}:key"
        async with DataLayer(settings) as data:
            await data.redis.set(key, b"value")
            # Many short rounds, alternating which side goes first, so drift and bursts of
            # load from elsewhere hit both alike; keep each side's best round.
            sides: dict[str, Callable[[], Awaitable[object]]] = {
                "ours_pg": lambda: data.postgres.fetchval("SELECT 1"),
                "raw_pg": lambda: raw_pool.fetchval("SELECT 1"),
                "ours_redis": lambda: data.redis.get(key),
                "raw_redis": lambda: raw_redis.get(key),
            }
            best = dict.fromkeys(sides, 0.0)
            for round_ in range(ROUNDS):
                order = list(sides) if round_ % 2 == 0 else list(reversed(sides))
                for side in order:
                    rate = await ops_per_second(sides[side], count=count, warmup=50)
                    best[side] = max(best[side], rate)
            health_ms = await timed_ms(data.health, rounds)
            clients = {  # keyed by lifecycle unit, as PINGS is
                "redis": data.redis,
                "postgres": data.postgres,
                "rabbitmq": data.rabbitmq,
                "vectors": data.vectors,
                "state": data.state,
                "events": data.events,
            }
            single_ms = {
                backend: statistics.median(
                    await timed_ms(partial(PINGS[backend], clients[backend]), rounds)
                )
                for backend in clients
            }
            await data.redis.delete(key)
        await delete_bus_topology(config.rabbitmq_url, name)
        await raw_pool.close()
        await raw_redis.aclose()
    slowest = max(single_ms, key=lambda backend: single_ms[backend])
    return [
        Measurement(
            "facade",
            "data.postgres.fetchval('SELECT 1')",
            "ops/s",
            best["ours_pg"],
            best["raw_pg"],
            "asyncpg pool made directly, same options",
            ">=",
            0.95,
        ),
        Measurement(
            "facade",
            "data.redis.get(key)",
            "ops/s",
            best["ours_redis"],
            best["raw_redis"],
            "Redis client made directly, same pool options",
            ">=",
            0.95,
        ),
        Measurement(
            "facade",
            "health(), all backends up (median)",
            "ms",
            statistics.median(health_ms),
            single_ms[slowest],
            f"slowest single ping ({slowest})",
            "<=",
            2.0,
            extra={"single_ping_ms": single_ms},
        ),
    ]
