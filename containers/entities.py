"""The entities layer: the store on the Postgres pool, its relays and projection runners."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
from dependency_injector import containers, providers

from app.entities import CATALOG
from app.entities.projections import AgentGoalStats, ProjectionRunner
from app.entities.relay import Relay
from app.entities.runtime import Entities
from app.entities.schema import apply_migrations, check_tables
from app.entities.sinks import BusSink, RedisPubSubSink, Sink
from app.entities.store import EntityStore
from app.events import EventBus
from settings import DeploymentMode, MigrateMode, Settings

__all__ = ["EntitiesContainer", "entities_resource"]


def _redis_if_started(redis_provider: Any, settings: Settings) -> Any:
    """The Redis client if the lifecycle started it (distributed mode, not overridden):
    never start it from here."""
    if settings.deployment_mode is not DeploymentMode.DISTRIBUTED:
        return None
    if redis_provider.overridden or not redis_provider.initialized:
        return redis_provider() if redis_provider.overridden else None
    return redis_provider()


async def entities_resource(
    pool: asyncpg.Pool,
    bus: EventBus,
    redis_provider: Any,
    settings: Settings,
    *,
    run_consumers: bool = True,
) -> AsyncIterator[Entities]:
    """Apply pending migrations (unless POSTGRES__MIGRATE=off), check the entity tables
    against their declarations, start the relays and projections."""
    if settings.postgres.migrate is MigrateMode.AUTO:
        await apply_migrations(pool, settings.postgres.migration_dirs)
    async with pool.acquire() as conn:
        await check_tables(conn, CATALOG)
    config = settings.entities
    store = EntityStore(pool, CATALOG)
    sinks: list[Sink] = [BusSink(bus)]
    redis = _redis_if_started(redis_provider, settings) if config.redis_pubsub else None
    if redis is not None:
        sinks.append(RedisPubSubSink(redis))
    relays = [
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
    projections = [
        ProjectionRunner(
            pool,
            AgentGoalStats(),
            batch_size=config.relay_batch_size,
            poll_interval_s=config.poll_interval_s,
            max_attempts=config.projection_max_attempts,
            standby_retry_s=config.standby_retry_s,
        )
    ]
    entities = Entities(
        store,
        pool,
        relays if config.relay_enabled else [],
        projections if config.projections_enabled else [],
    )
    if run_consumers:
        await entities.start()
    try:
        yield entities
    finally:
        await entities.stop()


class EntitiesContainer(containers.DeclarativeContainer):
    """``entities``: the store, relays and projections. Override ``run_consumers`` with
    ``False`` for a process that only reports (``check``)."""

    settings = providers.Dependency(instance_of=Settings)
    postgres: providers.Dependency[asyncpg.Pool] = providers.Dependency()
    event_bus: providers.Dependency[EventBus] = providers.Dependency()
    redis: providers.Dependency[Any] = providers.Dependency()

    run_consumers = providers.Object(True)
    entities = providers.Resource(
        entities_resource,
        postgres,
        event_bus,
        redis,
        settings,
        run_consumers=run_consumers,
    )
