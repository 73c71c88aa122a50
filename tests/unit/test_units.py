"""Which resources the lifecycle starts for each mode, bus and override."""

from __future__ import annotations

from pathlib import Path

import pytest
from dependency_injector import providers

from containers import create_container, resource_units
from settings import load_settings


def names(**overrides: object) -> dict[str, tuple[str, ...]]:
    settings = load_settings(**overrides)
    units = resource_units(create_container(settings), settings)
    return {unit.name: unit.depends_on for unit in units}


def test_single_node_starts_no_redis_and_no_rabbitmq(tmp_path: Path) -> None:
    """single_node + inprocess starts logging, embedded Postgres, memory state, bus, vectors
    and the entities (after Postgres and the bus)."""
    units = names(data_dir=tmp_path)
    assert list(units) == ["logging", "postgres", "state", "events", "vectors", "entities"]
    assert units["state"] == ("logging",)
    assert units["entities"] == ("logging", "postgres", "events")


def test_distributed_with_rabbitmq_starts_everything_in_dependency_order() -> None:
    """distributed + rabbitmq adds Redis and RabbitMQ, and state/events wait for them."""
    units = names(
        deployment_mode="distributed",
        event_bus="rabbitmq",
        rabbitmq={"url": "amqp://guest:guest@127.0.0.1:5672/"},
    )
    assert set(units) == {
        "logging",
        "redis",
        "postgres",
        "rabbitmq",
        "state",
        "events",
        "vectors",
        "entities",
    }
    assert units["state"] == ("logging", "redis")
    assert units["events"] == ("logging", "rabbitmq")
    assert units["entities"] == ("logging", "postgres", "events", "redis")


def test_elasticsearch_only_when_hosts_are_set() -> None:
    """Elasticsearch is started only when ELASTICSEARCH__HOSTS is configured."""
    assert "elasticsearch" not in names()
    assert "elasticsearch" in names(elasticsearch={"hosts": ["http://127.0.0.1:9200"]})


@pytest.mark.parametrize("public", ["state_backend", "event_bus", "vectors", "redis"])
def test_overridden_providers_are_not_started(public: str) -> None:
    """A provider overridden with a fake is left out, and nothing waits for it."""
    settings = load_settings(deployment_mode="distributed")
    container = create_container(settings)
    getattr(container, public).override(providers.Object(object()))
    units = {unit.name: unit for unit in resource_units(container, settings)}
    unit_name = {"state_backend": "state", "event_bus": "events"}.get(public, public)
    assert unit_name not in units
    assert all(unit_name not in unit.depends_on for unit in units.values())


def test_addresses_never_show_passwords() -> None:
    """Unit addresses (used in start errors) mask passwords."""
    settings = load_settings(
        deployment_mode="distributed",
        event_bus="rabbitmq",
        redis={"url": "redis://:s3cret@127.0.0.1:6379/0"},
        postgres={"dsn": "postgresql://app:s3cret@127.0.0.1:5432/app"},
        rabbitmq={"url": "amqp://guest:s3cret@127.0.0.1:5672/"},
    )
    units = resource_units(create_container(settings), settings)
    addresses = " ".join(unit.address for unit in units)
    assert "s3cret" not in addresses
    assert "postgresql://app:***@127.0.0.1:5432/app" in addresses


def test_unit_timeouts_follow_the_backends_own_timeouts() -> None:
    """Each unit's timeout outlasts what its settings let the backend take, so the backend's
    own error is the one reported (a fixed 30 s cut a slower configured connect short)."""
    settings = load_settings(
        deployment_mode="distributed",
        event_bus="rabbitmq",
        redis={"connect_timeout_s": 20, "socket_timeout_s": 10},
        postgres={"dsn": "postgresql://postgres@db:5432/app", "connect_timeout_s": 40},
        rabbitmq={"url": "amqp://guest:guest@mq:5672/", "connect_timeout_s": 45},
        elasticsearch={"hosts": ["http://es:9200"], "request_timeout_s": 15},
        events={"close_timeout_s": 25},
    )
    units = {unit.name: unit for unit in resource_units(create_container(settings), settings)}
    assert units["redis"].start_timeout_s > 2 * (20 + 10)
    assert units["postgres"].start_timeout_s > 2 * 40
    assert units["rabbitmq"].start_timeout_s > 45
    assert units["elasticsearch"].start_timeout_s > 4 * 15
    assert units["events"].stop_timeout_s > 25
