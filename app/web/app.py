"""``create_app``: the FastAPI app, wired to the container, the lifecycle in its lifespan."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import structlog
from fastapi import FastAPI

from app.entities import CATALOG
from app.errors import ConfigurationError, ResourceStopError
from app.web import health
from app.web.body_reads import BodyReads
from app.web.errors import install_error_handlers
from app.web.guard import ApiGuard, is_protected
from app.web.routes import (
    conversations,
    data_sessions,
    entities,
    entity_events,
    events,
    locks,
    sessions,
    vectors,
)
from containers import Container, build_lifecycle, create_container
from containers.accessors import get_state_backend
from settings import ApiAuth, RateLimitOnError, Settings

__all__ = ["create_app"]

log = structlog.get_logger(__name__)

BEARER_SCHEME = "bearerAuth"
YOUNG_GENERATION_THRESHOLD = 10_000


def _check_auth(settings: Settings) -> None:
    if settings.api.auth is ApiAuth.ENABLED and not settings.api.tokens:
        raise ConfigurationError(
            "API__TOKENS is empty and API__AUTH=enabled: set API__TOKENS to one or more "
            "bearer tokens, or API__AUTH=disabled to serve without authentication"
        )


def _tune_collector() -> None:
    """Keep what startup made (modules, routes, clients) out of every later full collection,
    and collect the young generation less often.

    Without the freeze, each full collection under load walked all of it again: measured
    65-70 ms pauses every few seconds at 32 connections, the whole p99 tail of the query
    route. With CPython's young threshold (700 net allocations), the objects of 32 requests
    in flight crossed it all the time: 455 young and 41 middle collections in 8 s, 5-7% of
    the event loop's time, at 32 concurrent queries. Requests free their objects by reference
    counting, so at 10,000 the collector ran a few times a minute under the same load.
    """
    gc.collect()
    gc.freeze()
    _young, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_GENERATION_THRESHOLD, middle, old)
    log.info(
        "api.gc_tuned", frozen=gc.get_freeze_count(), young_threshold=YOUNG_GENERATION_THRESHOLD
    )


def _declare_bearer_auth(app: FastAPI) -> None:
    """Say in the OpenAPI document that ``/v1`` and ``/api`` operations need a bearer token,
    as ``ApiGuard`` enforces (declared here, not as a per-route dependency: no cost per
    request), so ``/docs`` can send one and generated clients know to."""
    build = app.openapi
    declared: dict[str, Any] | None = None

    def openapi() -> dict[str, Any]:
        nonlocal declared
        schema = build()  # FastAPI's: cached, built again when the routes change
        if schema is not declared:
            declared = schema
            components = schema.setdefault("components", {})
            components.setdefault("securitySchemes", {})[BEARER_SCHEME] = {
                "type": "http",
                "scheme": "bearer",
            }
            for path, operations in schema.get("paths", {}).items():
                if is_protected(path):
                    for operation in operations.values():
                        operation["security"] = [{BEARER_SCHEME: []}]
        return schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way


def create_app(container: Container | None = None, *, freeze_gc: bool = False) -> FastAPI:
    """Build the app around ``container`` (a new one from the environment when omitted).

    Wires the container into ``app.services`` (declared once in ``Container.wiring_config``).
    The lifespan starts the backends the configured mode needs and stops them at shutdown;
    if they were already started (``python -m app serve`` starts them first, to report
    configuration errors cleanly), it only stops them. Override providers on the container
    before the app starts to replace backends with fakes.

    ``freeze_gc`` (what ``python -m app serve`` passes): once started, move every object
    that exists to the collector's permanent generation (``gc.freeze``) and raise the young
    generation's threshold to ``YOUNG_GENERATION_THRESHOLD``. A process-wide choice, so only
    the process's owner makes it.
    """
    container = container or create_container()
    settings: Settings = container.settings()
    _check_auth(settings)
    container.wire()
    lifecycle = build_lifecycle(container)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.api.auth is ApiAuth.DISABLED:
            log.warning("api.auth_disabled", hint="set API__TOKENS and API__AUTH=enabled")
        try:
            async with lifecycle:
                app.state.state_backend = await get_state_backend(container)
                if freeze_gc:
                    _tune_collector()
                try:
                    yield
                finally:
                    app.state.streams_stop.set()
        except ResourceStopError as exc:
            # The server only logs a failed lifespan shutdown; whoever runs it can raise it.
            app.state.stop_error = exc
            raise

    app = FastAPI(
        title="datalayer",
        version="0.1.0",
        summary="Vectors, events, sessions and locks over one async data layer.",
        lifespan=lifespan,
    )
    app.state.container = container
    app.state.lifecycle = lifecycle
    app.state.streams_stop = asyncio.Event()
    app.state.body_reads = BodyReads(settings.api.body_read_timeout_s, settings.api.max_body_bytes)
    app.state.stop_error = None
    routers = [
        health.router,
        vectors.build_router(settings.faiss.dimension),
        events.router,
        sessions.router,
        locks.router,
        data_sessions.router,
        conversations.router,
        entities.build_router(CATALOG),
        entity_events.router,
    ]
    install_error_handlers(app, routers)
    for router in routers:
        app.include_router(router)
    if settings.api.auth is ApiAuth.ENABLED:
        _declare_bearer_auth(app)
    app.add_middleware(
        ApiGuard,
        tokens=[token.get_secret_value() for token in settings.api.tokens],
        auth_enabled=settings.api.auth is ApiAuth.ENABLED,
        rate_limit=settings.api.rate_limit,
        window_seconds=settings.api.rate_limit_window_seconds,
        body_reads=app.state.body_reads,
        allow_on_rate_limit_error=settings.api.rate_limit_on_error is RateLimitOnError.ALLOW,
    )
    return app
