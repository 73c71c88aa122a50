"""Reading a request body with a deadline, a size bound, and an end at shutdown.

A client that declares a body and never sends it held its connection forever: uvicorn waits for
the body without a bound, and at shutdown waited for that request until its graceful timeout
(10 s), then answered a plain-text 500. Here each wait for the next piece of a body has a
deadline (``API__BODY_READ_TIMEOUT_S``, then a 408), and ``end_all`` (called as shutdown begins)
ends every wait at once with a 503, so shutdown is not held by a client.
"""

from __future__ import annotations

import asyncio
from typing import Final

from starlette.exceptions import HTTPException
from starlette.types import Message, Receive

from app.errors import ConfigurationError

__all__ = ["BodyReadRefused", "BodyReads"]

# The connection is closed after these answers: the unread rest of the body would otherwise be
# parsed as the next request.
CLOSE: Final = {"Connection": "close"}


class BodyReadRefused(HTTPException):
    """The body was not read (too slow, too large, or the server is stopping), with its code.

    An ``HTTPException`` because route handlers let those raised while reading the body
    through (others become FastAPI's generic 400).
    """

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(status, message, headers=CLOSE)
        self.code = code


class BodyReads:
    """Deadlines for the body reads of every request in flight, ended together at shutdown."""

    def __init__(self, timeout_s: float, max_body_bytes: int) -> None:
        if not timeout_s > 0 or max_body_bytes <= 0:
            msg = (
                "API__BODY_READ_TIMEOUT_S and API__MAX_BODY_BYTES must be > 0, "
                f"got {timeout_s} and {max_body_bytes}"
            )
            raise ConfigurationError(msg)
        self._timeout_s = timeout_s
        self.max_body_bytes = max_body_bytes
        self._waiting: set[asyncio.Timeout] = set()
        self._ending = False
        self.too_large_message = (
            f"the request body is larger than API__MAX_BODY_BYTES={max_body_bytes} bytes; "
            "send less per request (split a batch)"
        )
        self._timeout_message = (
            f"no part of the request body arrived within API__BODY_READ_TIMEOUT_S={timeout_s:g} "
            "s; send the body the Content-Length declares"
        )

    def end_all(self) -> None:
        """Shutdown begins: every body still awaited is refused now, and later ones at once
        unless already received. Call from the event loop's thread."""
        self._ending = True
        now = asyncio.get_running_loop().time()
        for deadline in list(self._waiting):
            if not deadline.expired():
                deadline.reschedule(now)

    def receive(self, receive: Receive, *, count: bool) -> Receive:
        """``receive`` with a deadline for each piece of the body; with ``count`` (a body
        without a ``Content-Length``), also refusing one that grows past the size limit.
        Once the body is complete, messages pass through untouched (a stream's disconnect)."""
        received = 0
        complete = False

        async def read_body() -> Message:
            nonlocal received, complete
            if complete:
                return await receive()
            loop = asyncio.get_running_loop()
            deadline = asyncio.timeout_at(loop.time() + (0 if self._ending else self._timeout_s))
            self._waiting.add(deadline)
            try:
                async with deadline:
                    message = await receive()
            except TimeoutError:
                if self._ending:
                    raise BodyReadRefused(
                        503, "shutting_down", "the server is shutting down; send the request again"
                    ) from None
                raise BodyReadRefused(408, "body_timeout", self._timeout_message) from None
            finally:
                self._waiting.discard(deadline)
            if message["type"] != "http.request" or not message.get("more_body", False):
                complete = True
            if count and message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise BodyReadRefused(413, "too_large", self.too_large_message)
            return message

        return read_body
