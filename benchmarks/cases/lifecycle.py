"""Start and stop of the full distributed stack vs the slowest single resource, same run."""

from __future__ import annotations

import asyncio
import gc
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aio_pika
from dependency_injector import providers

from app.backends import postgres_pool, rabbitmq_connection, redis_client
from app.logging import logging_resource
from benchmarks.core import BenchConfig, Measurement, case
from containers import Container, Lifecycle, Managed, create_container, plan
from settings import LogSettings, Settings, load_settings


def distributed_settings(config: BenchConfig, data_dir: Path) -> Settings:
    return load_settings(
        deployment_mode="distributed",
        event_bus="rabbitmq",
        data_dir=data_dir,
        redis={"url": config.redis_url},
        postgres={"dsn": config.postgres_dsn},
        rabbitmq={"url": config.rabbitmq_url, "exchange": EXCHANGE},
        faiss={"index_path": data_dir / "faiss", "dimension": 8},
        # the loopback Postgres 15 has no pgvector
        vectors={"backend": "faiss"},
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


BACKENDS = {"logging", "redis", "postgres", "rabbitmq"}
EXCHANGE = "bench.lifecycle"


async def delete_bus_topology(url: str, exchange: str) -> None:
    """Remove the exchanges and dead-letter queue the RabbitMQ bus declared."""
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        await channel.queue_delete(f"{exchange}.dead-letter")
        for name in (exchange, f"{exchange}.dead-letter"):
            await channel.exchange_delete(name)


async def time_raw_gather(
    factories: list[Callable[[], AsyncIterator[Any]]], log_settings: LogSettings
) -> float:
    """Start the same resources without the lifecycle: logging first (the three depend on
    it, as in the lifecycle), then a bare ``asyncio.gather``; return start ms."""
    generators = [factory() for factory in factories]
    logging_generator = logging_resource(log_settings)
    gc.collect()
    started = time.perf_counter()
    next(logging_generator)
    await asyncio.gather(*(anext(generator) for generator in generators))
    elapsed = (time.perf_counter() - started) * 1000
    for generator in generators:
        async for _ in generator:
            pass
    for _ in logging_generator:
        pass
    return elapsed


async def user_resource() -> AsyncIterator[str]:
    """A user's own resource: what it costs alone is measured beside the stack with it."""
    yield "user"


class WithUserResource(Container):
    """The product's container plus one resource of the user's, declared as users do."""

    user = providers.Resource(user_resource)
    user_lifecycle = Managed("user")


async def time_stack(
    settings: Settings, *, backends_only: bool, with_user: bool = False
) -> tuple[float, float]:
    """Start and stop through our Lifecycle: the three servers only (and the user's resource),
    or the whole container."""
    container = WithUserResource() if with_user else create_container()
    container.settings.override(providers.Object(settings))
    units = list(plan(container).units)
    if backends_only:
        units = [unit for unit in units if unit.name in BACKENDS | {"user"}]
    lifecycle = Lifecycle(units)
    gc.collect()  # both sides start with no garbage to collect (building the container makes some)
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
        full_starts: list[float] = []
        raw_starts: list[float] = []
        user_starts: list[float] = []
        paired_starts: list[float] = []
        user_alone: list[float] = []
        await time_stack(settings, backends_only=False)  # warm-up: imports, exchange declares
        for _ in range(rounds):
            for name, factory in singles.items():
                single_starts[name].append((await time_resource(factory))[0])
            full_starts.append((await time_stack(settings, backends_only=False))[0])
        # The stack against the bare gather in pairs whose order alternates: both are about
        # 10 ms, and whichever runs second in a fixed order finds warmer server connections.
        for pair in range(3 * rounds):
            for through_lifecycle in [True, False] if pair % 2 else [False, True]:
                if through_lifecycle:
                    start_ms, stop_ms = await time_stack(settings, backends_only=True)
                    stack_starts.append(start_ms)
                    stack_stops.append(stop_ms)
                else:
                    raw_starts.append(await time_raw_gather(list(singles.values()), settings.log))
        # The user's resource against the same stack without it, in pairs whose order
        # alternates, many of them: the difference looked for is small beside the noise.
        for pair in range(3 * rounds):
            sides = [False, True] if pair % 2 else [True, False]
            for with_user in sides:
                start_ms = (await time_stack(settings, backends_only=True, with_user=with_user))[0]
                (user_starts if with_user else paired_starts).append(start_ms)
            user_alone.append((await time_resource(user_resource))[0])
    await delete_bus_topology(config.rabbitmq_url, EXCHANGE)
    medians = {name: statistics.median(values) for name, values in single_starts.items()}
    slowest = max(medians, key=lambda name: medians[name])
    return [
        Measurement(
            case="lifecycle",
            metric="Postgres+Redis+RabbitMQ start via Lifecycle (median)",
            unit="ms",
            ours=statistics.median(stack_starts),
            baseline=statistics.median(raw_starts),
            baseline_name="logging, then a bare asyncio.gather of the same three",
            check="<=",
            bar=1.1,
            extra={"single_start_ms": medians, "rounds": rounds},
        ),
        Measurement(
            case="lifecycle",
            metric="Postgres+Redis+RabbitMQ start via Lifecycle (median)",
            unit="ms",
            ours=statistics.median(stack_starts),
            baseline=medians[slowest],
            baseline_name=f"slowest single start ({slowest}); reference, no lifecycle can "
            "reach it on two cores",
        ),
        Measurement(
            case="lifecycle",
            metric="the same three + a user's own resource (median)",
            unit="ms",
            ours=statistics.median(user_starts),
            baseline=statistics.median(paired_starts) + statistics.median(user_alone),
            baseline_name="the three without it + the user's resource started alone",
            check="<=",
            bar=1.1,
        ),
        Measurement(
            case="lifecycle",
            metric="Postgres+Redis+RabbitMQ stop via Lifecycle (median)",
            unit="ms",
            ours=statistics.median(stack_stops),
        ),
        Measurement(
            case="lifecycle",
            metric="whole distributed container start (+state, bus, index; median)",
            unit="ms",
            ours=statistics.median(full_starts),
            baseline=medians[slowest],
            baseline_name=f"slowest single start ({slowest})",
        ),
    ]
