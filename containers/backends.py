"""The backends layer: one ``Resource`` per native client or pool."""

from __future__ import annotations

from dependency_injector import containers, providers

from app.backends import elasticsearch_client, postgres_pool, rabbitmq_connection, redis_client
from settings import Settings

__all__ = ["BackendsContainer"]


class BackendsContainer(containers.DeclarativeContainer):
    """Redis, Postgres, Elasticsearch and RabbitMQ; the lifecycle decides which ones start."""

    settings = providers.Dependency(instance_of=Settings)

    redis = providers.Resource(redis_client, settings.provided.redis)
    postgres = providers.Resource(postgres_pool, settings)
    elasticsearch = providers.Resource(elasticsearch_client, settings.provided.elasticsearch)
    rabbitmq = providers.Resource(rabbitmq_connection, settings.provided.rabbitmq)
