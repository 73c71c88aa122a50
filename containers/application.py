"""The application container: every layer composed, with flat aliases for the public providers."""

from __future__ import annotations

from dependency_injector import containers, providers

from containers.backends import BackendsContainer
from containers.core import CoreContainer
from containers.data import DataContainer
from containers.database import DatabaseContainer
from containers.entities import EntitiesContainer
from containers.events import EventsContainer
from containers.state import StateContainer
from containers.vectors import VectorsContainer
from settings import Settings

__all__ = ["Container", "create_container"]


class Container(containers.DeclarativeContainer):
    """Everything an application needs to talk to its data.

    Override the public providers (``settings``, ``redis``, ``postgres``, ``database``,
    ``elasticsearch``, ``rabbitmq``, ``state_backend``, ``event_bus``, ``vectors``,
    ``session_manager``, ``conversation_history``, ``entities``) with fakes in tests; an
    overridden provider's real resource is never started by the lifecycle.
    """

    wiring_config = containers.WiringConfiguration(packages=["app.services"], auto_wire=False)

    core = providers.Container(CoreContainer)
    settings = core.settings
    logging = core.logging

    backends = providers.Container(BackendsContainer, settings=core.settings)
    redis = backends.redis
    postgres = backends.postgres
    elasticsearch = backends.elasticsearch
    rabbitmq = backends.rabbitmq

    database_layer = providers.Container(
        DatabaseContainer, settings=core.settings, postgres=backends.postgres
    )
    database = database_layer.client

    state_layer = providers.Container(StateContainer, settings=core.settings, redis=backends.redis)
    state_backend = state_layer.backend

    event_layer = providers.Container(
        EventsContainer, settings=core.settings, rabbitmq=backends.rabbitmq
    )
    event_bus = event_layer.bus

    vector_layer = providers.Container(
        VectorsContainer, settings=core.settings, postgres=backends.postgres
    )
    vectors = vector_layer.index

    data_layer = providers.Container(
        DataContainer,
        settings=core.settings,
        state_backend=state_layer.backend,
        postgres=backends.postgres,
        database=database_layer.client,
    )
    session_manager = data_layer.session_manager
    conversation_history = data_layer.conversation_history
    export_manager = data_layer.export_manager
    import_manager = data_layer.import_manager

    entity_layer = providers.Container(
        EntitiesContainer,
        settings=core.settings,
        postgres=backends.postgres,
        event_bus=event_layer.bus,
        redis=backends.redis,
        database=database_layer.client,
    )
    entities = entity_layer.entities


def create_container(settings: Settings | None = None) -> Container:
    """A new container; with ``settings`` given, they replace the ones read from the env."""
    container = Container()
    if settings is not None:
        container.settings.override(providers.Object(settings))
    return container
