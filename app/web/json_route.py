"""Request bodies parsed by pydantic-core's JSON parser instead of the stdlib's.

FastAPI reads a JSON body with ``Request.json()`` (``json.loads``), then validates the
objects. ``JSONRoute`` hands its endpoints a request whose ``json()`` uses
``pydantic_core.from_json``: 12 us instead of 73 us for a 384-float query body, the
largest single cost of the query route under load. Everything else (validation, the 422
shape, OpenAPI) is FastAPI's own.

On malformed JSON, ``json.loads`` parses the body again, so FastAPI's own ``json_invalid``
error is exactly the stdlib's. A body that only the stdlib accepts (an unpaired surrogate
escape such as ``"\\ud800"``, which is not Unicode text) is refused with the same error
type, naming the escape: accepted, it was stored but could never be sent back as JSON.

JSON nested deeper than pydantic-core goes (about 200 levels) is refused with that error type
too, whichever parser gives up: the stdlib's ``RecursionError`` (about 1,000 levels) would
otherwise reach FastAPI as "error parsing the body", a 400 instead of the documented 422.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Coroutine
from typing import Any

import pydantic_core
from fastapi import Request, Response
from fastapi.routing import APIRoute

__all__ = ["JSONRoute"]


# A high surrogate escape not followed by a low one, or a low one not preceded by a high one.
_LONE_SURROGATE = re.compile(
    r"\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F][0-9a-fA-F]{2})"
    r"|(?<!\\u[dD][89abAB][0-9a-fA-F]{2})\\u[dD][c-fC-F][0-9a-fA-F]{2}"
)


TOO_DEEP = "JSON nested too deep (arrays and objects within each other)"


def _parse(body: bytes) -> Any:
    try:
        return pydantic_core.from_json(body)
    except ValueError as exc:
        text = body.decode("utf-8", "replace")
        try:
            json.loads(body)  # malformed: the stdlib's JSONDecodeError, as FastAPI reports it
        except RecursionError as deep:
            raise json.JSONDecodeError(TOO_DEEP, text, 0) from deep
        if "recursion limit" in str(exc):  # pydantic-core's words for its depth limit
            raise json.JSONDecodeError(f"{TOO_DEEP}: {exc}", text, 0) from exc
        found = _LONE_SURROGATE.search(text)
        if found is None:
            raise json.JSONDecodeError(str(exc), text, 0) from exc
        reason = f"unpaired surrogate escape {found.group()}: strings must be Unicode text"
        raise json.JSONDecodeError(reason, text, found.start()) from exc


class _FastJSONRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = _parse(await self.body())
        return self._json


class JSONRoute(APIRoute):
    """An ``APIRoute`` whose request bodies are parsed with ``pydantic_core.from_json``."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        if self.body_field is None:  # nothing to parse: no wrapper on the way
            return handler

        async def handle(request: Request) -> Response:
            return await handler(_FastJSONRequest(request.scope, request.receive))

        return handle
