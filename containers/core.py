"""The core layer: settings and logging."""

from __future__ import annotations

from dependency_injector import containers, providers

from app.logging import logging_resource
from containers.declarations import Managed
from settings import load_settings

__all__ = ["CoreContainer"]


class CoreContainer(containers.DeclarativeContainer):
    """Settings read once from the environment, and structlog configured from them."""

    settings = providers.Singleton(load_settings)

    logging = providers.Resource(logging_resource, settings.provided.log)
    # Configured before anything else starts, so every other start and stop is logged with it.
    logging_lifecycle = Managed("logging", first=True)
