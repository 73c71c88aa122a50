"""``DataLayer``: start everything, hand out the native clients, stop everything.

For code that does not use wiring (scripts, notebooks, workers). It builds the application
container and drives its lifecycle; every client comes from the container's providers, so
overriding a provider on ``data.container`` before ``start()`` replaces that backend.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, Self

import asyncpg
import redis.asyncio as aioredis
from aio_pika.abc import AbstractRobustConnection
from elasticsearch import AsyncElasticsearch

from app.errors import BackendNotConfiguredError, NotStartedError
from app.events import EventBus
from app.health import BACKENDS, DISABLED, OK, Health
from app.state import StateBackend
from app.vectors import VectorStore
from containers import Container, Lifecycle, build_lifecycle, create_container, ping_all
from containers.accessors import resolve
from containers.readiness import Check
from containers.units import PINGS
from settings import Settings, load_settings

__all__ = ["DataLayer"]

HEALTH_TIMEOUT_S = 2.0

# backend name in health() -> (container provider, lifecycle unit, setting that enables it)
PROVIDERS: dict[str, tuple[str, str, str]] = {
    "redis": ("redis", "redis", "DEPLOYMENT_MODE=distributed"),
    "postgres": ("postgres", "postgres", "POSTGRES__DSN or POSTGRES__EMBEDDED"),
    "elasticsearch": ("elasticsearch", "elasticsearch", "ELASTICSEARCH__HOSTS"),
    "faiss": ("vectors", "vectors", "FAISS__INDEX_PATH"),
    "rabbitmq": ("rabbitmq", "rabbitmq", "EVENT_BUS=rabbitmq"),
    "state": ("state_backend", "state", "DEPLOYMENT_MODE"),
    "events": ("event_bus", "events", "EVENT_BUS"),
}


def _bound_ping(ping: Callable[[Any], Awaitable[object]], value: Any) -> Check:
    async def check() -> object:
        return await ping(value)

    return check


class DataLayer:
    """``async with DataLayer(settings) as data:`` then ``data.redis``, ``data.vectors``, ..."""

    def __init__(self, settings: Settings | None = None) -> None:
        self._settings = settings if settings is not None else load_settings()
        self._container = create_container(self._settings)
        self._lifecycle: Lifecycle | None = None
        self._clients: dict[str, Any] = {}
        # start() and stop() one at a time: a stop() arriving mid-start waits, then stops.
        self._transition = asyncio.Lock()

    @property
    def settings(self) -> Settings:
        return self._settings

    @property
    def container(self) -> Container:
        return self._container

    async def start(self) -> None:
        """Start the backends the configured mode needs; on failure nothing stays open."""
        async with self._transition:
            await self._start()

    async def _start(self) -> None:
        if self._lifecycle is not None:
            return
        lifecycle = build_lifecycle(self._container)
        await lifecycle.start()
        started = set(lifecycle.started)
        clients: dict[str, Any] = {}
        try:
            for backend, (provider_name, unit, _) in PROVIDERS.items():
                provider = getattr(self._container, provider_name)
                if unit in started or provider.overridden:
                    clients[backend] = await resolve(provider)
        except BaseException:
            await lifecycle.stop()
            raise
        self._clients = clients
        self._lifecycle = lifecycle

    async def stop(self) -> None:
        """Stop everything in reverse order; raises ``ResourceStopError`` with every failure."""
        async with self._transition:
            lifecycle, self._lifecycle = self._lifecycle, None
            self._clients = {}
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

    def _require_started(self) -> None:
        if self._lifecycle is None:
            raise NotStartedError("DataLayer not started; call start() or use async with")

    def _client(self, backend: str) -> Any:
        self._require_started()
        if backend not in self._clients:
            setting = PROVIDERS[backend][2]
            raise BackendNotConfiguredError(
                f"{backend} is not started in this configuration "
                f"(DEPLOYMENT_MODE={self._settings.deployment_mode}, "
                f"EVENT_BUS={self._settings.event_bus}); set {setting} to enable it. "
                "A client whose only user (state backend, event bus) is overridden is not "
                "started either: override the client too"
            )
        return self._clients[backend]

    @property
    def redis(self) -> aioredis.Redis:
        """The native ``redis.asyncio.Redis`` client (distributed mode)."""
        client: aioredis.Redis = self._client("redis")
        return client

    @property
    def postgres(self) -> asyncpg.Pool:
        """The native ``asyncpg`` pool."""
        pool: asyncpg.Pool = self._client("postgres")
        return pool

    @property
    def elasticsearch(self) -> AsyncElasticsearch:
        """The native ``AsyncElasticsearch`` client (when ``ELASTICSEARCH__HOSTS`` is set)."""
        client: AsyncElasticsearch = self._client("elasticsearch")
        return client

    @property
    def rabbitmq(self) -> AbstractRobustConnection:
        """The aio-pika robust connection (``EVENT_BUS=rabbitmq``)."""
        connection: AbstractRobustConnection = self._client("rabbitmq")
        return connection

    @property
    def vectors(self) -> VectorStore:
        """The selected vector store (FAISS or pgvector, per ``VECTORS__BACKEND``)."""
        index: VectorStore = self._client("faiss")
        return index

    @property
    def events(self) -> EventBus:
        bus: EventBus = self._client("events")
        return bus

    @property
    def state(self) -> StateBackend:
        backend: StateBackend = self._client("state")
        return backend

    async def health(self, *, timeout_s: float = HEALTH_TIMEOUT_S) -> Health:
        """Ping every backend concurrently, each within ``timeout_s``."""
        self._require_started()
        checks: dict[str, Check] = {
            backend: _bound_ping(PINGS[PROVIDERS[backend][1]], self._clients[backend])
            for backend in BACKENDS
            if backend in self._clients
        }
        results = await ping_all(checks, timeout_s=timeout_s)
        details: dict[str, str] = {}
        for backend in BACKENDS:
            result = results.get(backend)
            if result is None:
                details[backend] = DISABLED
            else:
                details[backend] = OK if result.ok else f"error: {result.error}"
        return Health(
            ok=all(result.ok for result in results.values()),
            details=details,
            latency_ms={name: result.latency_ms for name, result in results.items()},
        )
