"""Overridden providers in every mode: their real resources, and the clients only they use, stay
unstarted; what is not overridden still starts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from dependency_injector import providers

from app.entities.runtime import Entities
from app.events import RabbitMQEventBus
from app.state import RedisStateBackend
from containers import Container, build_lifecycle, create_container, plan
from containers.accessors import get_event_bus, get_postgres, get_redis, get_state_backend
from settings import Settings, load_settings
from tests.conftest import Fakes, is_started

pytestmark = pytest.mark.integration

# Nothing listens on port 1: a client that tried to start there would fail the lifecycle.
CLOSED_REDIS_URL = "redis://127.0.0.1:1/0"
CLOSED_RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:1/"


def distributed_settings(tmp_path: Path, **overrides: Any) -> Settings:
    """distributed + rabbitmq, isolated in ``tmp_path``; ``overrides`` replace the defaults."""
    values: dict[str, Any] = {
        "deployment_mode": "distributed",
        "vectors": {"backend": "faiss"},  # not what these tests are about
        "event_bus": "rabbitmq",
        "data_dir": tmp_path / "data",
        "redis": {"url": CLOSED_REDIS_URL, "connect_timeout_s": 1},
        "rabbitmq": {"url": CLOSED_RABBITMQ_URL, "connect_timeout_s": 1},
        "faiss": {"index_path": tmp_path / "faiss", "dimension": 4},
        "log": {"level": "WARNING"},
        # The entities' Redis pub/sub would be another user of Redis; these tests are about
        # the state backend's and the bus's clients.
        "entities": {"redis_pubsub": False},
    }
    values.update(overrides)
    return load_settings(**values)


def override(container: Container, fakes: Fakes, *publics: str) -> None:
    """Override the named public providers of ``container`` with the matching fake."""
    fake_for = {"state_backend": fakes.state, "event_bus": fakes.bus}
    for public in publics:
        getattr(container, public).override(providers.Object(fake_for[public]))


@pytest.mark.parametrize(
    ("overridden", "backends"),
    [
        ((), {"redis", "rabbitmq"}),
        (("state_backend",), {"rabbitmq"}),
        (("event_bus",), {"redis"}),
        (("state_backend", "event_bus"), set()),
    ],
)
def test_backend_clients_start_only_for_layers_not_overridden(
    tmp_path: Path, fakes: Fakes, overridden: tuple[str, ...], backends: set[str]
) -> None:
    """In distributed + rabbitmq, Redis starts only for a real state backend and RabbitMQ only
    for a real bus, and no remaining unit waits for a client left out."""
    settings = distributed_settings(tmp_path, postgres={"dsn": "postgresql://pg@db:5432/app"})
    container = create_container(settings)
    override(container, fakes, *overridden)
    units = {unit.name: unit for unit in plan(container).units}
    assert {"redis", "rabbitmq"} & set(units) == backends
    for unit in units.values():
        assert set(unit.depends_on) <= set(units), unit


async def test_distributed_with_state_and_bus_overridden_never_touches_redis_or_rabbitmq(
    tmp_path: Path, postgres_dsn: str, fakes: Fakes
) -> None:
    """distributed + rabbitmq with the state backend and the bus overridden starts and stops
    without connecting to Redis or RabbitMQ (both on closed ports), and hands out the fakes."""
    settings = distributed_settings(tmp_path, postgres={"dsn": postgres_dsn})
    container = create_container(settings)
    override(container, fakes, "state_backend", "event_bus")
    async with build_lifecycle(container) as lifecycle:
        assert set(lifecycle.started) == {
            "logging",
            "postgres",
            "database",
            "vectors",
            "sessions",
            "conversations",
            "entities",
        }
        state = await get_state_backend(container)
        assert state is fakes.state
        await state.set_value("key", "value")
        assert await fakes.state.get_value("key") == "value"
        assert await get_event_bus(container) is fakes.bus
        assert await (await get_postgres(container)).fetchval("SELECT 1") == 1
        assert not is_started(container.redis)
        assert not is_started(container.rabbitmq)
    assert lifecycle.started == ()


async def test_distributed_with_only_state_overridden_still_starts_rabbitmq(
    tmp_path: Path, postgres_dsn: str, rabbitmq_url: str, rabbitmq_exchange: str, fakes: Fakes
) -> None:
    """With only the state backend overridden, Redis (on a closed port) is left out while the
    real RabbitMQ bus and its connection start."""
    settings = distributed_settings(
        tmp_path,
        postgres={"dsn": postgres_dsn},
        rabbitmq={"url": rabbitmq_url, "exchange": rabbitmq_exchange},
    )
    container = create_container(settings)
    override(container, fakes, "state_backend")
    async with build_lifecycle(container) as lifecycle:
        assert {"rabbitmq", "events"} <= set(lifecycle.started)
        assert "redis" not in lifecycle.started
        assert isinstance(await get_event_bus(container), RabbitMQEventBus)
        assert await get_state_backend(container) is fakes.state
        assert not is_started(container.redis)
    assert lifecycle.started == ()


async def test_distributed_without_overrides_starts_redis_and_rabbitmq(
    tmp_path: Path,
    postgres_dsn: str,
    redis_url: str,
    rabbitmq_url: str,
    rabbitmq_exchange: str,
    unique_name: str,
) -> None:
    """Without overrides, distributed + rabbitmq starts the real Redis client and RabbitMQ
    connection, and the Redis state backend round-trips through that client."""
    settings = distributed_settings(
        tmp_path,
        postgres={"dsn": postgres_dsn},
        redis={"url": redis_url},
        rabbitmq={"url": rabbitmq_url, "exchange": rabbitmq_exchange},
        state={"namespace": unique_name},
    )
    container = create_container(settings)
    async with build_lifecycle(container) as lifecycle:
        assert {"redis", "rabbitmq", "state", "events"} <= set(lifecycle.started)
        assert is_started(container.redis)
        assert is_started(container.rabbitmq)
        state = await get_state_backend(container)
        assert isinstance(state, RedisStateBackend)
        assert isinstance(await get_event_bus(container), RabbitMQEventBus)
        await state.set_value("key", "value")
        try:
            assert await state.get_value("key") == "value"
            assert await (await get_redis(container)).keys(f"*{unique_name}*")
        finally:
            await state.delete("key")
    assert lifecycle.started == ()
    assert not is_started(container.redis)
    assert not is_started(container.rabbitmq)


async def test_overriding_postgres_skips_the_embedded_postgres(
    app_settings: Settings, overridden_container: Container
) -> None:
    """In single_node, overriding ``postgres`` (and ``database``, the client on it, and the
    conversation history, whose only database that is) leaves the embedded Postgres unstarted
    (no data directory is created) and hands out the overrides."""
    assert app_settings.embedded_postgres
    pool = object()
    overridden_container.postgres.override(providers.Object(pool))
    overridden_container.database.override(providers.Object(None))
    overridden_container.conversation_history.override(providers.Object(object()))
    # The entities run on Postgres: with a stand-in pool they are overridden too.
    overridden_container.entities.override(providers.Object(Entities.without_postgres()))
    async with build_lifecycle(overridden_container) as lifecycle:
        assert set(lifecycle.started) == {"logging", "sessions"}
        assert overridden_container.postgres() is pool
    assert not (app_settings.data_dir / "postgres").exists()
