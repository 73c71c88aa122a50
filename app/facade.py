"""``DataLayer``: start everything, hand out the native clients, stop everything.

For code that does not use wiring (scripts, notebooks, workers). It drives the lifecycle of
the application container, or of the caller's own (a subclass with resources of its own, each
declared with ``containers.Managed``); every client comes from the container's providers, so
overriding a provider on ``data.container`` before ``start()`` replaces that backend.
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Any, Self

import asyncpg
import redis.asyncio as aioredis
from aio_pika.abc import AbstractRobustConnection
from dependency_injector import providers
from elasticsearch import AsyncElasticsearch

from app.errors import BackendNotConfiguredError, NotStartedError
from app.events import EventBus
from app.health import Health, health_from_readiness
from app.state import StateBackend
from app.vectors import VectorIndex
from containers import Container, Lifecycle, build_lifecycle, check_readiness, create_container
from settings import Settings

__all__ = ["DataLayer"]

HEALTH_TIMEOUT_S = 2.0


class DataLayer:
    """``async with DataLayer(settings) as data:`` then ``data.redis``, ``data.vectors``, ...

    ``container``: the container to run (default: a new ``Container``). With both given,
    ``settings`` replace the container's own.
    """

    def __init__(
        self, settings: Settings | None = None, *, container: Container | None = None
    ) -> None:
        if container is None:
            container = create_container(settings)
        elif settings is not None:
            container.settings.override(providers.Object(settings))
        self._container = container
        self._settings: Settings = container.settings()
        self._lifecycle: Lifecycle | None = None
        # start() and stop() one at a time: a stop() arriving mid-start waits, then stops.
        self._transition = asyncio.Lock()

    @property
    def settings(self) -> Settings:
        return self._settings

    @property
    def container(self) -> Container:
        return self._container

    async def start(self) -> None:
        """Start the resources the configuration needs; on failure nothing stays open."""
        async with self._transition:
            if self._lifecycle is None:
                lifecycle = build_lifecycle(self._container)
                await lifecycle.start()
                self._lifecycle = lifecycle

    async def stop(self) -> None:
        """Stop everything in reverse order; raises ``ResourceStopError`` with every failure."""
        async with self._transition:
            lifecycle, self._lifecycle = self._lifecycle, None
            if lifecycle is not None:
                await lifecycle.stop()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def _running(self) -> Lifecycle:
        if self._lifecycle is None:
            raise NotStartedError("DataLayer not started; call start() or use async with")
        return self._lifecycle

    def resource(self, name: str) -> Any:
        """The object the resource ``name`` hands out: started, or its override.

        Raises ``BackendNotConfiguredError`` when the configuration leaves it off, saying
        what to set; ``NotStartedError`` before ``start()``.
        """
        lifecycle = self._running()
        running = {unit.name for unit in (*lifecycle.units, *lifecycle.external)}
        if name in running:
            return lifecycle.value(name)
        if name in lifecycle.disabled:
            hint = lifecycle.enable_hint(name) or "enable it in the settings"
            raise BackendNotConfiguredError(
                f"{name} is not started in this configuration "
                f"(DEPLOYMENT_MODE={self._settings.deployment_mode}, "
                f"EVENT_BUS={self._settings.event_bus}); {hint} to enable it. "
                "A client whose only user (state backend, event bus) is overridden is not "
                "started either: override the client too"
            )
        known = ", ".join(sorted(running | set(lifecycle.disabled)))
        raise BackendNotConfiguredError(
            f"no resource named {name!r} is declared in {type(self._container).__name__} "
            f"(declared: {known}); declare it with containers.Managed beside its provider"
        )

    @property
    def redis(self) -> aioredis.Redis:
        """The native ``redis.asyncio.Redis`` client (distributed mode)."""
        client: aioredis.Redis = self.resource("redis")
        return client

    @property
    def postgres(self) -> asyncpg.Pool:
        """The native ``asyncpg`` pool."""
        pool: asyncpg.Pool = self.resource("postgres")
        return pool

    @property
    def elasticsearch(self) -> AsyncElasticsearch:
        """The native ``AsyncElasticsearch`` client (when ``ELASTICSEARCH__HOSTS`` is set)."""
        client: AsyncElasticsearch = self.resource("elasticsearch")
        return client

    @property
    def rabbitmq(self) -> AbstractRobustConnection:
        """The aio-pika robust connection (``EVENT_BUS=rabbitmq``)."""
        connection: AbstractRobustConnection = self.resource("rabbitmq")
        return connection

    @property
    def vectors(self) -> VectorIndex:
        index: VectorIndex = self.resource("vectors")
        return index

    @property
    def events(self) -> EventBus:
        bus: EventBus = self.resource("events")
        return bus

    @property
    def state(self) -> StateBackend:
        backend: StateBackend = self.resource("state")
        return backend

    async def health(self, *, timeout_s: float = HEALTH_TIMEOUT_S) -> Health:
        """Ping every running resource concurrently under one deadline of ``timeout_s``.

        The same results as ``/health/ready`` and ``python -m app check``; ``details`` also
        carries the original design's ``faiss`` key (the ``vectors`` result).
        """
        return health_from_readiness(await check_readiness(self._running(), timeout_s=timeout_s))
