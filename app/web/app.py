"""``create_app``: the FastAPI application, its container and the lifecycle in its lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from app.web import health
from containers import Container, build_lifecycle, create_container

__all__ = ["create_app"]


def create_app(container: Container | None = None) -> FastAPI:
    """Build the app around ``container`` (a new one from the environment when omitted).

    The lifespan starts the backends the configured mode needs and stops them at shutdown;
    if they were already started (``python -m app serve`` starts them first to report
    configuration errors cleanly), it only stops them.
    """
    container = container or create_container()
    lifecycle = build_lifecycle(container)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        async with lifecycle:
            yield

    app = FastAPI(title="datalayer", version="0.1.0", lifespan=lifespan)
    app.state.container = container
    app.state.lifecycle = lifecycle
    app.include_router(health.router)
    return app
