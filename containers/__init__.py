"""Declarative containers, one per layer, composed by ``Container``; and our lifecycle."""

from containers.application import Container, create_container
from containers.declarations import Managed, Ping, ping_method
from containers.lifecycle import Lifecycle, ResourceUnit
from containers.planning import Plan, build_lifecycle, plan
from containers.readiness import Readiness, check_readiness, ping_all, readiness_table

__all__ = [
    "Container",
    "Lifecycle",
    "Managed",
    "Ping",
    "Plan",
    "Readiness",
    "ResourceUnit",
    "build_lifecycle",
    "check_readiness",
    "create_container",
    "ping_all",
    "ping_method",
    "plan",
    "readiness_table",
]
