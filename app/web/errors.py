"""One JSON shape for every error: ``{"error": {"code", "message", "request_id", "details"}}``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import structlog
from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Route
from starlette.types import Scope

from app.data.errors import (
    ConversationStoreError,
    FieldMappingError,
    InvalidConversationError,
    InvalidSessionError,
    MalformedImportError,
    SessionLimitError,
    UnrepresentableError,
)
from app.errors import (
    BackendClosedError,
    BackendNotConfiguredError,
    BusClosedError,
    ConcurrencyError,
    DatabaseConnectionError,
    DatabaseNotConnectedError,
    DataLayerError,
    DimensionMismatchError,
    EntitiesNotReadyError,
    EntityExistsError,
    EntityNotFoundError,
    EventArgumentError,
    EventArgumentTypeError,
    EventNotFoundError,
    EventSerializationError,
    EventTooLargeError,
    HasChildrenError,
    InvalidCursorError,
    InvalidEntityError,
    InvalidIdentifierError,
    InvalidListingError,
    InvalidQueryError,
    InvalidVectorError,
    MissingParentError,
    NotStartedError,
    PublishError,
    StateArgumentError,
    StateArgumentTypeError,
    StateBackendUnavailableError,
)

__all__ = [
    "ERROR_RESPONSES",
    "RETRY_AFTER_S",
    "ApiError",
    "ErrorBody",
    "error_response",
    "install_error_handlers",
]

log = structlog.get_logger(__name__)


class ErrorDetail(BaseModel):
    code: str
    message: str
    request_id: str | None
    details: Any = None


class ErrorBody(BaseModel):
    """The body of every error response."""

    error: ErrorDetail


class ApiError(Exception):
    """An error a route raises on purpose, with its status and code."""

    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details


def _request_id(request: Request) -> str | None:
    value = request.scope.get("state", {}).get("request_id")
    return value if isinstance(value, str) else None


def error_response(
    status: int,
    code: str,
    message: str,
    request_id: str | None,
    details: Any = None,
    *,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body = {
        "error": {"code": code, "message": message, "request_id": request_id, "details": details}
    }
    return JSONResponse(body, status_code=status, headers=headers)


# Our typed errors -> (HTTP status, code). The first matching class wins, so order matters.
STATUS_BY_ERROR: tuple[tuple[type[BaseException], int, str], ...] = (
    (BackendNotConfiguredError, 503, "backend_not_configured"),
    (BackendClosedError, 503, "backend_closed"),
    (BusClosedError, 503, "bus_closed"),
    (NotStartedError, 503, "not_started"),
    (PublishError, 503, "publish_failed"),
    (StateBackendUnavailableError, 503, "state_unavailable"),
    (EntitiesNotReadyError, 503, "entities_not_ready"),
    (DatabaseConnectionError, 503, "database_unavailable"),
    (DatabaseNotConnectedError, 503, "database_unavailable"),
    (EventTooLargeError, 413, "too_large"),
    (EntityNotFoundError, 404, "not_found"),
    (EventNotFoundError, 404, "not_found"),
    (ConcurrencyError, 409, "version_conflict"),
    (EntityExistsError, 409, "already_exists"),
    (HasChildrenError, 409, "has_children"),
    (MissingParentError, 422, "missing_parent"),
    (InvalidCursorError, 422, "invalid_cursor"),
    (InvalidListingError, 422, "invalid_input"),
    (InvalidEntityError, 422, "invalid_input"),
    # The caller's arguments: the typed argument errors of the tree (app/errors.py).
    (StateArgumentError, 422, "invalid_input"),
    (StateArgumentTypeError, 422, "invalid_input"),
    (EventArgumentError, 422, "invalid_input"),
    (EventArgumentTypeError, 422, "invalid_input"),
    (EventSerializationError, 422, "invalid_input"),
    (DimensionMismatchError, 422, "invalid_input"),
    (InvalidVectorError, 422, "invalid_input"),
    (InvalidIdentifierError, 422, "invalid_input"),
    (InvalidQueryError, 422, "invalid_input"),
    (InvalidSessionError, 422, "invalid_input"),
    (InvalidConversationError, 422, "invalid_input"),
    (FieldMappingError, 422, "invalid_input"),
    (MalformedImportError, 422, "invalid_input"),
    (UnrepresentableError, 422, "invalid_input"),
    (SessionLimitError, 409, "session_limit"),
    (ConversationStoreError, 503, "database_unavailable"),
)
# A plain ValueError or TypeError is not in the table: outside our typed errors it means a
# bug (or a library refusing what we passed it), so ApiGuard answers it with a 500 whose
# message is the fixed public one; its text, which may name internals, goes to the log.

# Codes of the HTTP errors raised by Starlette, FastAPI and the guard (others: http_<status>).
CODE_BY_STATUS: dict[int, str] = {404: "not_found", 413: "too_large"}

# What a client is told of a server-side failure: the error's own text names hosts, queues,
# namespaces and driver replies, so it goes to the log (with the request id) only.
PUBLIC_MESSAGES: dict[str, str] = {
    "backend_not_configured": "this backend is not started in the configured deployment mode",
    "backend_closed": "the backend is shutting down",
    "bus_closed": "the event bus is closed",
    "not_started": "the backends are not started",
    "publish_failed": "the event broker did not confirm the event in time; retry later",
    "state_unavailable": "the state store is unavailable; retry later",
    "database_unavailable": "the database failed the request; retry later",
    "internal_error": "internal error; quote the request id",
    "entities_not_ready": "the entity store is not ready; retry later",
}


def _entity_error_facts(exc: DataLayerError) -> tuple[Any, dict[str, str] | None]:
    """The details (and headers) a client needs to act on an entity error: the current
    version (and its ETag) on a conflict, the field of a missing parent, the children, the
    type and id of an entity that already exists."""
    if isinstance(exc, ConcurrencyError):
        details = {"current_version": exc.current, "expected_version": exc.expected}
        return details, {"ETag": f'"{exc.current}"'}
    if isinstance(exc, MissingParentError):
        return {"field": exc.field, "parent_type": exc.parent_type}, None
    if isinstance(exc, HasChildrenError):
        return {"children": exc.children}, None
    if isinstance(exc, EntityExistsError):
        return {"entity_type": exc.entity_type, "entity_id": str(exc.entity_id)}, None
    return None, None


# Outages a client may retry: their 503 says when (a short interval; an outage has no known end).
RETRY_AFTER_S = 5
RETRYABLE_CODES: frozenset[str] = frozenset(
    {"database_unavailable", "publish_failed", "state_unavailable"}
)


def _status_for(exc: DataLayerError) -> tuple[int, str]:
    for error_type, status, code in STATUS_BY_ERROR:
        if isinstance(exc, error_type):
            return status, code
    return 500, "internal_error"


def _allowed_methods(routers: Sequence[APIRouter], scope: Scope) -> list[str]:
    """The methods of the resource at this path: every route of the first path template that
    matches it, as in the OpenAPI document (Starlette names only the first route's method).

    ``/v1/locks/a:extend`` is the ``{key}:extend`` resource (POST), not ``{key}`` with key
    ``a:extend``, because that template is registered first.
    """
    routes = [r for router in routers for r in router.routes if isinstance(r, Route) and r.methods]
    template = next((r.path for r in routes if r.matches(scope)[0] != Match.NONE), None)
    return sorted({method for r in routes if r.path == template for method in r.methods or ()})


def install_error_handlers(app: FastAPI, routers: Sequence[APIRouter]) -> None:
    """Map validation errors and our typed errors onto the JSON shape.

    Anything unexpected is turned into a 500 by ``ApiGuard``, which wraps the whole app.
    """

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, _request_id(request), exc.details)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        details = [
            {"field": ".".join(str(p) for p in error["loc"]), "message": _message(error)}
            for error in exc.errors()
        ]
        return error_response(
            422, "invalid_request", "the request is not valid", _request_id(request), details
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = getattr(exc, "code", None) or CODE_BY_STATUS.get(
            exc.status_code, f"http_{exc.status_code}"
        )
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(_allowed_methods(routers, request.scope))
        return error_response(
            exc.status_code, code, str(exc.detail), _request_id(request), headers=headers
        )

    @app.exception_handler(DataLayerError)
    async def data_layer_error(request: Request, exc: DataLayerError) -> JSONResponse:
        status, code = _status_for(exc)
        if status < 500:
            details, headers = _entity_error_facts(exc)
            return error_response(
                status, code, str(exc), _request_id(request), details, headers=headers
            )
        log.error("api.backend_error", code=code, error=f"{type(exc).__name__}: {exc}")
        retry = {"Retry-After": str(RETRY_AFTER_S)} if code in RETRYABLE_CODES else None
        return error_response(
            status, code, PUBLIC_MESSAGES[code], _request_id(request), headers=retry
        )


def _message(error: Mapping[str, Any]) -> str:
    """The validation message, with the reason FastAPI keeps aside for malformed JSON."""
    reason = (error.get("ctx") or {}).get("error")
    return (
        f"{error['msg']}: {reason}"
        if error.get("type") == "json_invalid" and reason
        else error["msg"]
    )


def _described(description: str) -> dict[str, Any]:
    return {"model": ErrorBody, "description": description}


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _described("the body could not be read"),
    401: _described("missing or wrong bearer token"),
    408: _described("the body did not arrive within API__BODY_READ_TIMEOUT_S"),
    413: _described("too large"),
    422: _described("invalid request, input or path"),
    429: _described("rate limit exceeded; see Retry-After"),
    431: _described("request line and headers over API__MAX_HEADER_BYTES"),
    503: _described("backend not configured or unavailable, or shutting down"),
}
