"""The RabbitMQ resource: an aio-pika robust connection, only when ``EVENT_BUS=rabbitmq``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aio_pika
from aio_pika.abc import AbstractRobustConnection
from yarl import URL

from app.errors import ConfigurationError, RabbitMQUnavailableError
from settings import RabbitMQSettings

__all__ = ["ping_rabbitmq", "rabbitmq_connection"]


async def rabbitmq_connection(
    settings: RabbitMQSettings,
) -> AsyncIterator[AbstractRobustConnection]:
    """Open a robust connection (it reconnects by itself) and close it at stop.

    Built here rather than with ``aio_pika.connect_robust``: a connect that times out or is
    cancelled must close the connection, whose reconnecting task would otherwise keep
    running and connect later, with nobody left to close it.
    """
    if settings.url is None:
        raise ConfigurationError("RABBITMQ__URL is not set; EVENT_BUS=rabbitmq needs it")
    connection = aio_pika.RobustConnection(
        URL(settings.url.get_secret_value()), reconnect_interval=settings.reconnect_interval_s
    )
    timeout = settings.connect_timeout_s
    try:
        try:
            await asyncio.wait_for(connection.connect(timeout=timeout), timeout)
        except TimeoutError:
            msg = f"no connection within {timeout:g} s (RABBITMQ__CONNECT_TIMEOUT_S)"
            raise TimeoutError(msg) from None
        yield connection
    finally:
        await connection.close()


async def ping_rabbitmq(connection: AbstractRobustConnection) -> None:
    """The connection is open and connected (a robust one that lost the broker is not)."""
    if connection.is_closed:
        raise RabbitMQUnavailableError("the RabbitMQ connection is closed")
    if not connection.connected.is_set():
        raise RabbitMQUnavailableError("the RabbitMQ connection is down (reconnecting)")
