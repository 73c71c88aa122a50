"""Which resources the configured mode needs, in which order, and how to ping each."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from dependency_injector import providers

from app.backends import ping_elasticsearch, ping_postgres, ping_rabbitmq, ping_redis
from containers.application import Container
from containers.lifecycle import ResourceUnit
from settings import DeploymentMode, EventBusKind, Settings

__all__ = ["PINGS", "resource_units"]

EMBEDDED_START_TIMEOUT_S = 120.0
VECTORS_STOP_TIMEOUT_S = 120.0
# A unit's own timeout is a backstop: past the backend's worst case from its settings, so
# that the backend's specific error ("no connection within 10 s (...)") is the one seen.
TIMEOUT_MARGIN_S = 5.0


def _ping_method(target: Any) -> Awaitable[object]:
    """The ping of our own components (state backend, event bus, vector index): ``.ping()``."""
    result: Awaitable[object] = target.ping()
    return result


# Unit name -> how to ping the object the unit hands out (the facade pings overrides alike).
PINGS: dict[str, Callable[[Any], Awaitable[object]]] = {
    "redis": ping_redis,
    "postgres": ping_postgres,
    "elasticsearch": ping_elasticsearch,
    "rabbitmq": ping_rabbitmq,
    "state": _ping_method,
    "events": _ping_method,
    "vectors": _ping_method,
    "entities": _ping_method,
}


def _start_timeouts(settings: Settings) -> dict[str, float]:
    """Each server's start: its connects and first round trip, at their configured timeouts."""
    redis, postgres = settings.redis, settings.postgres
    return {
        "redis": 2 * (redis.connect_timeout_s + redis.socket_timeout_s) + TIMEOUT_MARGIN_S,
        # The pool opens its first connection, then the others together.
        "postgres": EMBEDDED_START_TIMEOUT_S
        if settings.embedded_postgres
        else 2 * postgres.connect_timeout_s + TIMEOUT_MARGIN_S,
        # The client retries a failed connection 3 times (elasticsearch-py's default).
        "elasticsearch": 4 * settings.elasticsearch.request_timeout_s + TIMEOUT_MARGIN_S,
        "rabbitmq": settings.rabbitmq.connect_timeout_s + TIMEOUT_MARGIN_S,
    }


def _postgres_address(settings: Settings) -> str:
    if settings.embedded_postgres:
        return f"embedded:{settings.data_dir / 'postgres'}"
    return settings.postgres.address()


def _overridden_with_none(provider: Any) -> bool:
    """``container.postgres.override(providers.Object(None))``: a run without Postgres (and so
    without the entities, which live there)."""
    last = provider.last_overriding
    return provider.overridden and isinstance(last, providers.Object) and last() is None


def resource_units(container: Container, settings: Settings) -> list[ResourceUnit]:
    """The units to start for ``settings``: only what the mode and bus need, minus overrides.

    A backend client is started only for a layer that is not overridden: Redis for the Redis
    state backend, RabbitMQ for the RabbitMQ bus. Nothing else in the container uses these
    clients, so with ``state_backend`` (``event_bus``) overridden, Redis (RabbitMQ) stays down.
    """
    distributed = settings.deployment_mode is DeploymentMode.DISTRIBUTED
    rabbit = settings.event_bus is EventBusKind.RABBITMQ
    redis_needed = distributed and not container.state_backend.overridden
    rabbit_needed = rabbit and not container.event_bus.overridden
    start_s = _start_timeouts(settings)
    candidates: list[tuple[bool, Any, ResourceUnit]] = [
        (True, container.logging, ResourceUnit("logging", container.logging)),
        (
            True,
            container.postgres,
            ResourceUnit(
                "postgres",
                container.postgres,
                _postgres_address(settings),
                ("logging",),
                PINGS["postgres"],
                start_timeout_s=start_s["postgres"],
            ),
        ),
        (
            redis_needed,
            container.redis,
            ResourceUnit(
                "redis",
                container.redis,
                settings.redis.address(),
                ("logging",),
                PINGS["redis"],
                start_timeout_s=start_s["redis"],
            ),
        ),
        (
            settings.elasticsearch.enabled,
            container.elasticsearch,
            ResourceUnit(
                "elasticsearch",
                container.elasticsearch,
                settings.elasticsearch.address(),
                ("logging",),
                PINGS["elasticsearch"],
                start_timeout_s=start_s["elasticsearch"],
            ),
        ),
        (
            rabbit_needed,
            container.rabbitmq,
            ResourceUnit(
                "rabbitmq",
                container.rabbitmq,
                settings.rabbitmq.address(),
                ("logging",),
                PINGS["rabbitmq"],
                start_timeout_s=start_s["rabbitmq"],
            ),
        ),
        (
            True,
            container.state_backend,
            ResourceUnit(
                "state",
                container.state_layer.redis_backend
                if distributed
                else container.state_layer.memory,
                settings.redis.address() if distributed else "memory",
                ("logging", "redis") if distributed else ("logging",),
                PINGS["state"],
                aliases=(container.state_backend,),
            ),
        ),
        (
            True,
            container.event_bus,
            ResourceUnit(
                "events",
                container.event_layer.rabbitmq_bus if rabbit else container.event_layer.inprocess,
                settings.rabbitmq.address() if rabbit else "in-process",
                ("logging", "rabbitmq") if rabbit else ("logging",),
                PINGS["events"],
                # The bus drains its handlers for up to EVENTS__CLOSE_TIMEOUT_S, then closes.
                stop_timeout_s=settings.events.close_timeout_s + TIMEOUT_MARGIN_S,
                aliases=(container.event_bus,),
            ),
        ),
        (
            True,
            container.vectors,
            ResourceUnit(
                "vectors",
                container.vectors,
                str(settings.faiss.index_path),
                ("logging",),
                PINGS["vectors"],
                stop_timeout_s=VECTORS_STOP_TIMEOUT_S,
            ),
        ),
        (
            not _overridden_with_none(container.postgres),
            container.entities,
            ResourceUnit(
                "entities",
                container.entities,
                _postgres_address(settings),
                ("logging", "postgres", "events", "redis"),
                PINGS["entities"],
                stop_timeout_s=settings.entities.relay_publish_timeout_s + TIMEOUT_MARGIN_S,
            ),
        ),
    ]
    units = [unit for wanted, public, unit in candidates if wanted and not public.overridden]
    present = {unit.name for unit in units}
    return [
        replace(unit, depends_on=tuple(dep for dep in unit.depends_on if dep in present))
        for unit in units
    ]
