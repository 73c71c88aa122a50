"""Which resources the lifecycle starts for each mode, bus and override, derived from the
containers' ``Managed`` declarations and the provider graph."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from dependency_injector import containers, providers

from app.errors import DeclarationError, UnitGraphError
from containers import Container, Managed, ResourceUnit, build_lifecycle, create_container, plan
from settings import load_settings


def names(**overrides: object) -> dict[str, tuple[str, ...]]:
    """Unit name -> what it waits for, for a container on ``overrides`` settings."""
    units = plan(create_container(load_settings(**overrides))).units
    return {unit.name: unit.depends_on for unit in units}


def units_of(container: Container) -> dict[str, ResourceUnit]:
    """The units ``container`` starts, by name."""
    return {unit.name: unit for unit in plan(container).units}


async def nothing(*_: object) -> AsyncIterator[str]:
    """A resource function that hands out a string and holds nothing."""
    yield "value"


def test_single_node_starts_no_redis_and_no_rabbitmq(tmp_path: Path) -> None:
    """single_node + inprocess starts logging, embedded Postgres and the database client on it,
    memory state, bus, vectors, the sessions and conversations on them, and the entities after
    Postgres and the bus (no Redis for their pub/sub)."""
    units = names(data_dir=tmp_path)
    assert set(units) == {
        "logging",
        "postgres",
        "database",
        "state",
        "events",
        "vectors",
        "sessions",
        "conversations",
        "entities",
    }
    assert units["state"] == ("logging",)
    assert units["database"] == ("logging", "postgres")
    assert units["sessions"] == ("logging", "state")
    assert units["conversations"] == ("logging", "database", "postgres")
    assert {"postgres", "events"} <= set(units["entities"])
    assert "redis" not in units["entities"]


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
        "database",
        "rabbitmq",
        "state",
        "events",
        "vectors",
        "sessions",
        "conversations",
        "entities",
    }
    assert units["state"] == ("logging", "redis")
    assert units["events"] == ("logging", "rabbitmq")
    assert set(units["entities"]) == {"logging", "postgres", "database", "events", "redis"}


def test_entities_publish_to_redis_only_when_asked() -> None:
    """ENTITIES__REDIS_PUBSUB=false in distributed mode: the entities do not wait for Redis."""
    units = names(deployment_mode="distributed", entities={"redis_pubsub": False})
    assert "redis" not in units["entities"]


def test_elasticsearch_only_when_hosts_are_set() -> None:
    """Elasticsearch is started only when ELASTICSEARCH__HOSTS is configured."""
    assert "elasticsearch" not in names()
    assert "elasticsearch" in names(elasticsearch={"hosts": ["http://127.0.0.1:9200"]})


@pytest.mark.parametrize(
    "public",
    [
        "state_backend",
        "event_bus",
        "vectors",
        "redis",
        "database",
        "session_manager",
        "conversation_history",
    ],
)
def test_overridden_providers_are_not_started(public: str) -> None:
    """A provider overridden with a fake is left out, and nothing waits for it."""
    container = create_container(load_settings(deployment_mode="distributed"))
    getattr(container, public).override(providers.Object(object()))
    result = plan(container)
    unit_name = {
        "state_backend": "state",
        "event_bus": "events",
        "session_manager": "sessions",
        "conversation_history": "conversations",
    }.get(public, public)
    assert unit_name not in {unit.name for unit in result.units}
    assert all(unit_name not in unit.depends_on for unit in result.units)
    assert unit_name in {unit.name for unit in result.external}


def test_addresses_never_show_passwords() -> None:
    """Unit addresses (used in start errors) mask passwords."""
    settings = load_settings(
        deployment_mode="distributed",
        event_bus="rabbitmq",
        redis={"url": "redis://:s3cret@127.0.0.1:6379/0"},
        postgres={"dsn": "postgresql://app:s3cret@127.0.0.1:5432/app"},
        rabbitmq={"url": "amqp://guest:s3cret@127.0.0.1:5672/"},
    )
    addresses = " ".join(unit.address for unit in plan(create_container(settings)).units)
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
    units = units_of(create_container(settings))
    assert units["redis"].start_timeout_s > 2 * (20 + 10)
    assert units["postgres"].start_timeout_s > 2 * 40
    assert units["rabbitmq"].start_timeout_s > 45
    assert units["elasticsearch"].start_timeout_s > 4 * 15
    assert units["events"].stop_timeout_s > 25


def test_redis_is_left_off_when_its_only_user_is_overridden() -> None:
    """Redis starts on demand: with the state backend overridden and the entities' pub/sub
    off, nothing uses it, so it is reported as disabled with what to set, not started."""
    settings = load_settings(deployment_mode="distributed", entities={"redis_pubsub": False})
    container = create_container(settings)
    container.state_backend.override(providers.Object(object()))
    result = plan(container)
    assert "redis" not in {unit.name for unit in result.units}
    assert "redis" in result.disabled
    assert "DEPLOYMENT_MODE=distributed" in result.disabled["redis"]


class UsesTheBus(Container):
    """A user's container: one resource that uses the event bus and the settings."""

    recorder = providers.Resource(nothing, Container.settings, Container.event_bus)
    recorder_lifecycle = Managed("recorder", address="memory://recorder")


def test_a_user_resource_waits_for_what_its_provider_uses() -> None:
    """A user's resource is started after the bus its arguments name (through the Selector's
    selected branch) and after logging, with no list of dependencies written anywhere."""
    units = units_of(UsesTheBus())
    assert units["recorder"].depends_on == ("logging", "events")
    assert units["recorder"].address == "memory://recorder"


def test_the_selected_branch_decides_what_a_user_resource_needs() -> None:
    """With the RabbitMQ bus selected, the user's resource still waits for ``events`` (which
    itself waits for RabbitMQ), and RabbitMQ starts because the bus uses it."""
    settings = load_settings(
        event_bus="rabbitmq", rabbitmq={"url": "amqp://guest:guest@127.0.0.1:5672/"}
    )
    container = UsesTheBus()
    container.settings.override(providers.Object(settings))
    units = units_of(container)
    assert units["recorder"].depends_on == ("logging", "events")
    assert units["events"].depends_on == ("logging", "rabbitmq")


def test_a_user_resource_on_an_overridden_provider_does_not_wait_for_it() -> None:
    """An overridden bus is external: the user's resource does not wait for it."""
    container = UsesTheBus()
    container.event_bus.override(providers.Object(object()))
    assert units_of(container)["recorder"].depends_on == ("logging",)


class NamesAMissingProvider(Container):
    """A declaration whose provider name is misspelt."""

    recorder = providers.Resource(nothing)
    recorder_lifecycle = Managed("recordr")


def test_a_declaration_naming_no_provider_is_refused_before_anything_starts() -> None:
    """The error names the container, the missing provider and the providers it has."""
    message = "NamesAMissingProvider declares Managed('recordr'), but NamesAMissingProvider has"
    with pytest.raises(DeclarationError, match=re.escape(message)):
        plan(NamesAMissingProvider())


class DeclaresAFactory(Container):
    """A declaration on something the lifecycle cannot start or stop."""

    maker: providers.Factory[dict[str, str]] = providers.Factory(dict)
    maker_lifecycle = Managed("maker")


def test_a_declaration_on_a_factory_is_refused() -> None:
    """Only Resources (or Selectors of them) can be managed; the error says what it got."""
    with pytest.raises(DeclarationError, match=r"DeclaresAFactory\.maker is a Factory"):
        plan(DeclaresAFactory())


class NeedsSearch(Container):
    """A user's resource that uses Elasticsearch."""

    indexer = providers.Resource(nothing, Container.elasticsearch)
    indexer_lifecycle = Managed("indexer")


def test_a_resource_needing_a_switched_off_one_is_refused() -> None:
    """Using Elasticsearch while ELASTICSEARCH__HOSTS is unset is a clear error, up front."""
    with pytest.raises(DeclarationError, match="indexer needs elasticsearch"):
        plan(NeedsSearch())


class Circular(containers.DeclarativeContainer):
    """Two resources that need each other, closed through an overridden Dependency."""

    settings = providers.Object(load_settings())
    later: providers.Dependency[str] = providers.Dependency()
    first = providers.Resource(nothing, later)
    second = providers.Resource(nothing, first)
    first_lifecycle = Managed("first")
    second_lifecycle = Managed("second")


def test_a_dependency_cycle_is_a_typed_error_naming_it() -> None:
    """The cycle is found when the lifecycle is built, before anything starts."""
    container = Circular()
    container.later.override(container.second)
    cycles = r"first -> second -> first|second -> first -> second"
    with pytest.raises(UnitGraphError, match=cycles):
        build_lifecycle(container)


class SameName(Container):
    """A user resource that takes a name the product already uses."""

    cache = providers.Resource(nothing)
    cache_lifecycle = Managed("cache", name="redis")


def test_two_resources_with_one_name_are_refused() -> None:
    """Public names are unique: readiness and health are keyed by them."""
    with pytest.raises(DeclarationError, match="two resources are named 'redis'"):
        plan(SameName())


def test_the_vector_store_follows_vectors_backend() -> None:
    """VECTORS__BACKEND=auto: FAISS in single_node (no Postgres edge), pgvector in distributed
    (waits for Postgres; its address names the server, masked, and the schema)."""
    single = units_of(create_container(load_settings()))
    assert single["vectors"].depends_on == ("logging",)
    assert single["vectors"].address == "data/faiss"
    settings = load_settings(
        deployment_mode="distributed",
        postgres={"dsn": "postgresql://app:s3cret@db:5432/app"},
        vectors={"schema": "embeddings"},
    )
    distributed = units_of(create_container(settings))
    assert "postgres" in distributed["vectors"].depends_on
    assert distributed["vectors"].address == (
        "pgvector:postgresql://app:***@db:5432/app schema=embeddings"
    )
    faiss = load_settings(deployment_mode="distributed", vectors={"backend": "faiss"})
    assert "postgres" not in units_of(create_container(faiss))["vectors"].depends_on
