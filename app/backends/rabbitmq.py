"""The RabbitMQ resource: an aio-pika robust connection, only when ``EVENT_BUS=rabbitmq``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aio_pika
from aio_pika.abc import AbstractRobustConnection

from app.errors import ConfigurationError
from settings import RabbitMQSettings

__all__ = ["ping_rabbitmq", "rabbitmq_connection"]


class RabbitMQUnavailableError(ConnectionError):
    """The connection to the broker is closed."""


async def rabbitmq_connection(
    settings: RabbitMQSettings,
) -> AsyncIterator[AbstractRobustConnection]:
    """Open a robust connection (it reconnects by itself) and close it at stop."""
    if settings.url is None:
        raise ConfigurationError("RABBITMQ__URL is not set; EVENT_BUS=rabbitmq needs it")
    connection = await asyncio.wait_for(
        aio_pika.connect_robust(
            settings.url.get_secret_value(),
            reconnect_interval=settings.reconnect_interval_s,
        ),
        settings.connect_timeout_s,
    )
    try:
        yield connection
    finally:
        await connection.close()


async def ping_rabbitmq(connection: AbstractRobustConnection) -> None:
    if connection.is_closed:
        raise RabbitMQUnavailableError("the RabbitMQ connection is closed (reconnecting)")
