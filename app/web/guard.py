"""A pure ASGI middleware for ``/v1`` and ``/api``: request id, bearer auth, per-caller rate
limit, headers.

Pure ASGI rather than ``BaseHTTPMiddleware`` so it adds no task or stream wrapping per request
(it wraps ``send`` only to add headers), and server-sent event streams pass through untouched.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import random
from collections.abc import Sequence
from urllib.parse import unquote_to_bytes

import structlog
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.state import StateBackend
from app.web.body_reads import BodyReads
from app.web.errors import PUBLIC_MESSAGES, RETRY_AFTER_S, error_response

__all__ = ["PROTECTED_PREFIXES", "ApiGuard", "caller_of", "is_protected"]

log = structlog.get_logger(__name__)

# Our own API and the original service's (entities, events, ...): same auth and limits.
PROTECTED_PREFIXES: tuple[str, ...] = ("/v1", "/api")
REQUEST_ID_HEADER = "x-request-id"
MAX_REQUEST_ID = 128


def caller_of(token: str) -> str:
    """A stable, non-secret identity for a token (used as rate-limit key and lock owner)."""
    return "token:" + hashlib.sha256(token.encode()).hexdigest()[:16]


def _request_id(headers: Headers) -> str:
    given = headers.get(REQUEST_ID_HEADER, "")
    if 0 < len(given) <= MAX_REQUEST_ID and given.isprintable() and given.isascii():
        return given
    # 128 bits from the PRNG (seeded from os.urandom, reseeded after fork), 32 hex digits like
    # uuid4().hex: a request id names a request, it guards nothing. uuid4's getrandom() call
    # was 8% of the event loop's time under load.
    return f"{random.getrandbits(128):032x}"


def _declared_length(headers: Headers) -> int | None:
    """The ``Content-Length`` the client declared (None if none; the server checked its form)."""
    value = headers.get("content-length", "")
    return int(value) if value.isdigit() else None


def _undecodable_path(scope: Scope) -> str | None:
    """The raw path if one of its percent-escapes is not UTF-8, else None.

    Servers decode escapes leniently (``urllib.parse.unquote``: a bad byte becomes U+FFFD), so
    ``/a%FF`` and ``/a%FE`` reached the routes as the same id and wrote the same record.
    """
    raw: bytes = scope.get("raw_path") or b""
    if b"%" not in raw:
        return None
    raw = raw.split(b"?", 1)[0]
    try:
        unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")
    return None


def _client_address(scope: Scope) -> str:
    client = scope.get("client")
    return f"ip:{client[0] if client else 'unknown'}"


def is_protected(path: str) -> bool:
    """Every path starting with ``/v1`` or ``/api`` (as ``/v1`` alone was before: nothing
    under those prefixes answers without a token, not even a 404)."""
    return path.startswith(PROTECTED_PREFIXES)


def _route_path(scope: Scope) -> str:
    """The path the app's router matches: without the ``root_path`` a proxy or a mount added.

    Servers (uvicorn, for one) and Starlette's ``Mount`` put ``root_path`` in front of
    ``path``; checking ``path`` alone let ``/api/v1/...`` through unauthenticated.
    """
    path: str = scope["path"]
    root_path: str = scope.get("root_path", "")
    if root_path and path.startswith(root_path) and path[len(root_path) :].startswith("/"):
        return path[len(root_path) :]
    return path


class ApiGuard:
    """Authenticate and rate-limit ``/v1`` and ``/api`` requests; give every response a
    request id."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        tokens: Sequence[str],
        auth_enabled: bool,
        rate_limit: int,
        window_seconds: float,
        body_reads: BodyReads,
        allow_on_rate_limit_error: bool = False,
    ) -> None:
        self.app = app
        self._allow_on_error = allow_on_rate_limit_error
        self._max_body = body_reads.max_body_bytes
        self._body_reads = body_reads
        # (token bytes, caller identity), the identity hashed once here, not per request
        self._tokens = [(token.encode(), caller_of(token)) for token in tokens]
        self._auth_enabled = auth_enabled
        self._limit = rate_limit
        self._window = window_seconds
        self._retry_after = str(max(1, math.ceil(window_seconds)))

    def _authenticate(self, headers: Headers) -> str | None:
        scheme, _, presented = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not presented:
            return None
        candidate = presented.strip().encode()
        caller: str | None = None
        for token, identity in self._tokens:  # every token is compared: no early exit
            if hmac.compare_digest(candidate, token):
                caller = identity
        return caller

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        request_id = _request_id(headers)
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        extra = {"X-Request-ID": request_id}
        with structlog.contextvars.bound_contextvars(request_id=request_id):
            refusal = None
            if is_protected(_route_path(scope)):
                refusal = await self._guard(scope, headers, state, extra)
            declared = _declared_length(headers)
            if refusal is None and declared is not None and declared > self._max_body:
                refusal = self._too_large(request_id)
            if refusal is None and (undecodable := _undecodable_path(scope)) is not None:
                refusal = error_response(
                    422,
                    "invalid_path",
                    f"the path {undecodable!r} has a percent-escape that is not UTF-8; "
                    "escape each character as the %XX of its UTF-8 bytes",
                    request_id,
                )
            if refusal is not None:
                await refusal(scope, receive, self._with_headers(send, extra))
                return
            # A declared length was checked above and the server delivers no more than it;
            # only a body without one (chunked) is counted as it arrives. Every body read has
            # a deadline.
            bounded = self._body_reads.receive(receive, count=declared is None)
            await self._call_app(scope, bounded, self._with_headers(send, extra), request_id)

    def _too_large(self, request_id: str) -> ASGIApp:
        message = self._body_reads.too_large_message
        return error_response(413, "too_large", message, request_id)

    async def _call_app(self, scope: Scope, receive: Receive, send: Send, request_id: str) -> None:
        """Run the app; an unexpected exception becomes a 500 with the request id, logged."""
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            log.exception("api.unexpected_error", error_type=type(exc).__name__)
            if started:
                raise
            message = PUBLIC_MESSAGES["internal_error"]
            response = error_response(500, "internal_error", message, request_id)
            await response(scope, receive, send)

    async def _guard(
        self, scope: Scope, headers: Headers, state: dict[str, object], extra: dict[str, str]
    ) -> ASGIApp | None:
        request_id = str(state["request_id"])
        caller = self._authenticate(headers) if self._auth_enabled else None
        # A request without a valid token is limited per client address: it gets the same
        # headers, and tokens cannot be guessed at full speed.
        key = caller or _client_address(scope)
        refusal = await self._rate_limit(scope, key, request_id, extra)
        if refusal is not None:
            return refusal
        if self._auth_enabled and caller is None:
            return error_response(
                401,
                "unauthorized",
                "a valid bearer token is required (Authorization: Bearer <token>)",
                request_id,
                headers={"WWW-Authenticate": "Bearer"},
            )
        state["caller"] = key
        return None

    async def _rate_limit(
        self, scope: Scope, key: str, request_id: str, extra: dict[str, str]
    ) -> ASGIApp | None:
        backend: StateBackend = scope["app"].state.state_backend
        try:
            allowed, remaining = await backend.rate_limit_check(
                key, self._limit, self._window, scope="api"
            )
        except Exception as exc:
            if self._allow_on_error:
                # The user chose availability over limits: served unlimited, never silently.
                log.exception(
                    "api.rate_limit_bypassed", caller=key, policy="API__RATE_LIMIT_ON_ERROR=allow"
                )
                return None
            log.exception("api.rate_limit_unavailable", caller=key)
            return error_response(
                503,
                "rate_limit_unavailable",
                f"the rate limiter's state backend failed: {type(exc).__name__}; retry later",
                request_id,
                headers={"Retry-After": str(RETRY_AFTER_S)},  # not the window: may be minutes
            )
        extra["X-RateLimit-Limit"] = str(self._limit)
        extra["X-RateLimit-Remaining"] = str(remaining)
        if not allowed:
            log.info("api.rate_limited", caller=key, limit=self._limit)
            return error_response(
                429,
                "rate_limited",
                f"more than {self._limit} requests in {self._window:g} s",
                request_id,
                headers={"Retry-After": self._retry_after},
            )
        return None

    @staticmethod
    def _with_headers(send: Send, extra: dict[str, str]) -> Send:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                response_headers = MutableHeaders(scope=message)
                for name, value in extra.items():
                    response_headers[name] = value
            await send(message)

        return send_with_headers
