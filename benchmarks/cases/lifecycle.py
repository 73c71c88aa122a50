"""Start and stop of the full distributed stack vs the slowest single resource, same run."""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from app.backends import postgres_pool, rabbitmq_connection, redis_client
from benchmarks.core import BenchConfig, Measurement, case
from containers import build_lifecycle, create_container
from settings import Settings, load_settings


def distributed_settings(config: BenchConfig, data_dir: Path) -> Settings:
    return load_settings(
        deployment_mode="distributed",
        event_bus="rabbitmq",
        data_dir=data_dir,
        redis={"url": config.redis_url},
        postgres={"dsn": config.postgres_dsn},
        rabbitmq={"url": config.rabbitmq_url, "exchange": "bench.lifecycle"},
        faiss={"index_path": data_dir / "faiss", "dimension": 8},
        log={"level": "WARNING"},
    )


async def time_resource(factory: Callable[[], AsyncIterator[Any]]) -> tuple[float, float]:
    """Start and stop one resource generator directly; return (start_ms, stop_ms)."""
    started = time.perf_counter()
    generator = factory()
    await anext(generator)
    up = time.perf_counter()
    async for _ in generator:
        pass
    return (up - started) * 1000, (time.perf_counter() - up) * 1000


async def time_stack(settings: Settings) -> tuple[float, float]:
    lifecycle = build_lifecycle(create_container(settings))
    started = time.perf_counter()
    await lifecycle.start()
    up = time.perf_counter()
    await lifecycle.stop()
    return (up - started) * 1000, (time.perf_counter() - up) * 1000


@case("lifecycle")
async def lifecycle_case(config: BenchConfig) -> list[Measurement]:
    rounds = 3 if config.quick else 9
    with tempfile.TemporaryDirectory() as tmp:
        settings = distributed_settings(config, Path(tmp))
        singles: dict[str, Callable[[], AsyncIterator[Any]]] = {
            "redis": lambda: redis_client(settings.redis),
            "postgres": lambda: postgres_pool(settings),
            "rabbitmq": lambda: rabbitmq_connection(settings.rabbitmq),
        }
        single_starts: dict[str, list[float]] = {name: [] for name in singles}
        stack_starts: list[float] = []
        stack_stops: list[float] = []
        await time_stack(settings)  # warm-up: imports, first connections, exchange declares
        for _ in range(rounds):
            for name, factory in singles.items():
                single_starts[name].append((await time_resource(factory))[0])
            start_ms, stop_ms = await time_stack(settings)
            stack_starts.append(start_ms)
            stack_stops.append(stop_ms)
    medians = {name: statistics.median(values) for name, values in single_starts.items()}
    slowest = max(medians, key=lambda name: medians[name])
    return [
        Measurement(
            case="lifecycle",
            metric="distributed stack start (median)",
            unit="ms",
            ours=statistics.median(stack_starts),
            baseline=medians[slowest],
            baseline_name=f"slowest single start ({slowest})",
            check="<=",
            bar=1.2,
            extra={"single_start_ms": medians, "rounds": rounds},
        ),
        Measurement(
            case="lifecycle",
            metric="distributed stack stop (median)",
            unit="ms",
            ours=statistics.median(stack_stops),
        ),
    ]
