"""Which resources the configured mode needs, in which order, and how to ping each."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from app.backends import ping_elasticsearch, ping_postgres, ping_rabbitmq, ping_redis
from containers.application import Container
from containers.lifecycle import ResourceUnit
from settings import DeploymentMode, EventBusKind, Settings

__all__ = ["PINGS", "resource_units"]

EMBEDDED_START_TIMEOUT_S = 120.0
VECTORS_STOP_TIMEOUT_S = 120.0


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
}


def _postgres_address(settings: Settings) -> str:
    if settings.embedded_postgres:
        return f"embedded:{settings.data_dir / 'postgres'}"
    return settings.postgres.address()


def resource_units(container: Container, settings: Settings) -> list[ResourceUnit]:
    """The units to start for ``settings``: only what the mode and bus need, minus overrides."""
    distributed = settings.deployment_mode is DeploymentMode.DISTRIBUTED
    rabbit = settings.event_bus is EventBusKind.RABBITMQ
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
                start_timeout_s=EMBEDDED_START_TIMEOUT_S if settings.embedded_postgres else 30.0,
            ),
        ),
        (
            distributed,
            container.redis,
            ResourceUnit(
                "redis", container.redis, settings.redis.address(), ("logging",), PINGS["redis"]
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
            ),
        ),
        (
            rabbit,
            container.rabbitmq,
            ResourceUnit(
                "rabbitmq",
                container.rabbitmq,
                settings.rabbitmq.address(),
                ("logging",),
                PINGS["rabbitmq"],
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
    ]
    units = [unit for wanted, public, unit in candidates if wanted and not public.overridden]
    present = {unit.name for unit in units}
    return [
        replace(unit, depends_on=tuple(dep for dep in unit.depends_on if dep in present))
        for unit in units
    ]
