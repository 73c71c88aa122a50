"""Declarative containers, one per layer, composed by ``Container``; and our lifecycle."""

from containers.application import Container, create_container
from containers.lifecycle import Lifecycle, ResourceUnit
from containers.readiness import Readiness, check_readiness, ping_all, readiness_table
from containers.units import resource_units

__all__ = [
    "Container",
    "Lifecycle",
    "Readiness",
    "ResourceUnit",
    "build_lifecycle",
    "check_readiness",
    "create_container",
    "ping_all",
    "readiness_table",
    "resource_units",
]


def build_lifecycle(container: Container) -> Lifecycle:
    """The lifecycle of ``container`` for its own settings."""
    return Lifecycle(resource_units(container, container.settings()))
