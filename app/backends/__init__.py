"""Resource functions for the native clients: each creates its client or pool and closes it."""

from app.backends.elasticsearch import elasticsearch_client, ping_elasticsearch
from app.backends.postgres import ping_postgres, postgres_pool
from app.backends.rabbitmq import ping_rabbitmq, rabbitmq_connection
from app.backends.redis import ping_redis, redis_client

__all__ = [
    "elasticsearch_client",
    "ping_elasticsearch",
    "ping_postgres",
    "ping_rabbitmq",
    "ping_redis",
    "postgres_pool",
    "rabbitmq_connection",
    "redis_client",
]
