"""Fixtures shared by the RabbitMQ integration tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import pytest

from tests.contract.events_support import BusFactory
from tests.fakes.tcp_proxy import TcpProxy


@pytest.fixture
async def buses(rabbitmq_url: str, unique_name: str) -> AsyncIterator[BusFactory]:
    """Started RabbitMQ buses on the test's own exchange, closed and deleted afterwards."""
    factory = BusFactory("rabbitmq", url=rabbitmq_url, exchange=unique_name)
    yield factory
    await factory.aclose()


@pytest.fixture
async def proxy(rabbitmq_url: str) -> AsyncIterator[TcpProxy]:
    """A TCP proxy in front of the broker that a test can cut or freeze (a broker that hangs)."""
    parts = urlsplit(rabbitmq_url)
    tcp = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5672)
    await tcp.start()
    yield tcp
    tcp.thaw()
    await tcp.aclose()
