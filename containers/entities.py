"""The entities layer: the store on the Postgres pool, its relays and projection runners."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import redis.asyncio as aioredis
import structlog
from dependency_injector import containers, providers

from app.entities import CATALOG
from app.entities.projections import AgentGoalStats, ProjectionRunner
from app.entities.relay import Relay
from app.entities.runtime import Entities
from app.entities.schema import check_tables
from app.entities.sinks import BusSink, RedisPubSubSink, Sink
from app.entities.store import EntityStore
from app.errors import ConfigurationError
from app.events import EventBus
from containers.declarations import Managed, ping_method
from settings import DeploymentMode, Settings

__all__ = ["EntitiesContainer", "entities_resource", "redis_pubsub_key"]

log = structlog.get_logger(__name__)
TIMEOUT_MARGIN_S = 5.0


def redis_pubsub_key(settings: Settings) -> str:
    """``on`` when the relay also publishes to Redis pub/sub: distributed mode (Redis runs)
    and ENTITIES__REDIS_PUBSUB. The Selector on it keeps Redis out of single_node entirely."""
    distributed = settings.deployment_mode is DeploymentMode.DISTRIBUTED
    return "on" if distributed and settings.entities.redis_pubsub else "off"


def _relays(pool: asyncpg.Pool, sinks: list[Sink], settings: Settings) -> list[Relay]:
    config = settings.entities
    return [
        Relay(
            pool,
            sink,
            batch_size=config.relay_batch_size,
            poll_interval_s=config.poll_interval_s,
            max_backoff_s=config.relay_max_backoff_s,
            publish_timeout_s=config.relay_publish_timeout_s,
            standby_retry_s=config.standby_retry_s,
        )
        for sink in sinks
    ]


def _projections(pool: asyncpg.Pool, settings: Settings) -> list[ProjectionRunner]:
    config = settings.entities
    return [
        ProjectionRunner(
            pool,
            AgentGoalStats(),
            batch_size=config.relay_batch_size,
            poll_interval_s=config.poll_interval_s,
            max_attempts=config.projection_max_attempts,
            standby_retry_s=config.standby_retry_s,
        )
    ]


async def entities_resource(
    pool: asyncpg.Pool | None,
    bus: EventBus,
    redis: aioredis.Redis | None,
    settings: Settings,
    database: object,
    *,
    run_consumers: bool = True,
) -> AsyncIterator[Entities]:
    """Check the entity tables against their declarations, start the relays and projections.

    ``database`` (the database client) is taken only so that the lifecycle starts the
    entities after it: its start applies the migrations, the entity tables among them. With
    the tables missing (POSTGRES__MIGRATE=off), the entities answer 503 and readiness fails
    naming the tables and columns; in a probe (``run_consumers=False``: ``check``, which never
    migrates) readiness reports them as pending migrations.
    """
    del database
    if pool is None:  # Postgres overridden with None: nothing to run on
        log.warning("entities.without_postgres")
        yield Entities.without_postgres()
        return
    async with pool.acquire() as conn:
        try:
            await check_tables(conn, CATALOG)
        except ConfigurationError as exc:
            log.error("entities.not_migrated", error=str(exc))  # noqa: TRY400 - reported, not raised
            # A probe (check: consumers off) does not migrate; serve would.
            yield Entities.not_migrated(str(exc), probe=not run_consumers)
            return
    config = settings.entities
    sinks: list[Sink] = [BusSink(bus)]
    if redis is not None:
        sinks.append(RedisPubSubSink(redis))
    entities = Entities(
        EntityStore(pool, CATALOG),
        pool,
        _relays(pool, sinks, settings) if config.relay_enabled else [],
        _projections(pool, settings) if config.projections_enabled else [],
    )
    if run_consumers:
        await entities.start()
    try:
        yield entities
    finally:
        await entities.stop()


def _address(settings: Settings) -> str:
    if settings.embedded_postgres:
        return f"embedded:{settings.data_dir / 'postgres'}"
    return settings.postgres.address()


def _stop_timeout(settings: Settings) -> float:
    # A relay lets its batch in flight finish (publish timeout at most) before it stops.
    return settings.entities.relay_publish_timeout_s + TIMEOUT_MARGIN_S


class EntitiesContainer(containers.DeclarativeContainer):
    """``entities``: the store, relays and projections. Override ``run_consumers`` with
    ``False`` for a process that only reports (``check``)."""

    settings = providers.Dependency(instance_of=Settings)
    postgres: providers.Dependency[asyncpg.Pool] = providers.Dependency()
    event_bus: providers.Dependency[EventBus] = providers.Dependency()
    redis: providers.Dependency[Any] = providers.Dependency()
    database: providers.Dependency[Any] = providers.Dependency()

    # Redis only when the relay publishes there; otherwise nothing (Redis is not started).
    pubsub_redis = providers.Selector(
        providers.Callable(redis_pubsub_key, settings),
        on=redis,
        off=providers.Object(None),
    )
    run_consumers = providers.Object(True)
    entities = providers.Resource(
        entities_resource,
        postgres,
        event_bus,
        pubsub_redis,
        settings,
        database,
        run_consumers=run_consumers,
    )
    entities_lifecycle = Managed(
        "entities",
        ping=ping_method,
        address=_address,
        stop_timeout_s=_stop_timeout,
    )
