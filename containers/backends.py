"""The backends layer: one ``Resource`` per native client or pool, each declared for the
lifecycle beside it: how to ping it, where it is, how long its start and stop may take."""

from __future__ import annotations

from dependency_injector import containers, providers

from app.backends import (
    elasticsearch_client,
    ping_elasticsearch,
    ping_postgres,
    ping_rabbitmq,
    ping_redis,
    postgres_pool,
    rabbitmq_connection,
    redis_client,
)
from containers.declarations import Managed
from settings import Settings

__all__ = ["BackendsContainer"]

EMBEDDED_START_TIMEOUT_S = 120.0
# A unit's own timeout is a backstop: past the backend's worst case from its settings, so
# that the backend's specific error ("no connection within 10 s (...)") is the one seen.
TIMEOUT_MARGIN_S = 5.0


def _redis_start_timeout(settings: Settings) -> float:
    redis = settings.redis
    return 2 * (redis.connect_timeout_s + redis.socket_timeout_s) + TIMEOUT_MARGIN_S


def _postgres_start_timeout(settings: Settings) -> float:
    if settings.embedded_postgres:
        return EMBEDDED_START_TIMEOUT_S
    # The pool opens its first connection, then the others together.
    return 2 * settings.postgres.connect_timeout_s + TIMEOUT_MARGIN_S


def _postgres_address(settings: Settings) -> str:
    if settings.embedded_postgres:
        return f"embedded:{settings.data_dir / 'postgres'}"
    return settings.postgres.address()


def _elasticsearch_start_timeout(settings: Settings) -> float:
    # The client retries a failed connection 3 times (elasticsearch-py's default).
    return 4 * settings.elasticsearch.request_timeout_s + TIMEOUT_MARGIN_S


def _rabbitmq_start_timeout(settings: Settings) -> float:
    return settings.rabbitmq.connect_timeout_s + TIMEOUT_MARGIN_S


class BackendsContainer(containers.DeclarativeContainer):
    """Redis, Postgres, Elasticsearch and RabbitMQ.

    Redis and RabbitMQ start on demand: only when a started layer uses them (the Redis state
    backend, the RabbitMQ bus), so overriding that layer leaves its server untouched.
    """

    settings = providers.Dependency(instance_of=Settings)

    redis = providers.Resource(redis_client, settings.provided.redis)
    redis_lifecycle = Managed(
        "redis",
        ping=ping_redis,
        address=lambda settings: settings.redis.address(),
        start_timeout_s=_redis_start_timeout,
        on_demand=True,
        enable_hint="set DEPLOYMENT_MODE=distributed",
    )

    postgres = providers.Resource(postgres_pool, settings)
    postgres_lifecycle = Managed(
        "postgres",
        ping=ping_postgres,
        address=_postgres_address,
        start_timeout_s=_postgres_start_timeout,
    )

    elasticsearch = providers.Resource(elasticsearch_client, settings.provided.elasticsearch)
    elasticsearch_lifecycle = Managed(
        "elasticsearch",
        ping=ping_elasticsearch,
        address=lambda settings: settings.elasticsearch.address(),
        start_timeout_s=_elasticsearch_start_timeout,
        enabled=lambda settings: settings.elasticsearch.enabled,
        enable_hint="set ELASTICSEARCH__HOSTS",
    )

    rabbitmq = providers.Resource(rabbitmq_connection, settings.provided.rabbitmq)
    rabbitmq_lifecycle = Managed(
        "rabbitmq",
        ping=ping_rabbitmq,
        address=lambda settings: settings.rabbitmq.address(),
        start_timeout_s=_rabbitmq_start_timeout,
        on_demand=True,
        enable_hint="set EVENT_BUS=rabbitmq",
    )
