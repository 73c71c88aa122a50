"""The uvicorn server ``python -m app serve`` runs: a header cap, a shutdown held by no one.

uvicorn's httptools protocol buffers a request's line and headers without a bound (one 64 MB
header stalled ``/health/live`` for 1.8 s; eight at once took the process to 781 MB), and h11's
bound answers a plain-text 400. ``HeaderLimitedProtocol`` counts the bytes of a request's head
as they arrive and answers a 431 in the API's error shape once they pass
``API__MAX_HEADER_BYTES``, before more is buffered.
"""

from __future__ import annotations

import asyncio
import json
import random
import signal
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from types import FrameType
from typing import Any, ClassVar, Final

import structlog
import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from settings import Settings

__all__ = ["GracefulServer", "HeaderLimitedProtocol", "build_server", "header_limited_protocol"]

log = structlog.get_logger(__name__)

GRACEFUL_SHUTDOWN_S: Final = 10
# After a 431 the rest of an oversized head is read and dropped for this long, so the client
# (still sending) reads the answer instead of a connection reset; then the connection closes.
LINGER_S: Final = 1.0


class HeaderLimitedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, refusing a request line plus headers over ``max_head_bytes``.

    Bytes are counted from the start of a request's head until its headers are complete; the
    count is checked after each chunk is parsed, so at most one read (64 KiB) more than the
    limit is ever held.
    """

    max_head_bytes: ClassVar[int] = 64 * 1024

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_bytes = 0
        self._in_head = True
        self._refused = False

    def data_received(self, data: bytes) -> None:
        if self._refused:  # lingering after a 431: drop what is still coming
            return
        in_head_before = self._in_head
        super().data_received(data)
        if in_head_before and self._in_head:
            self._head_bytes += len(data)
            if self._head_bytes > self.max_head_bytes and not self.transport.is_closing():
                self._refuse()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._head_bytes = 0
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head = True

    def _refuse(self) -> None:
        self._refused = True
        request_id = f"{random.getrandbits(128):032x}"
        message = (
            f"the request line and headers are larger than API__MAX_HEADER_BYTES="
            f"{self.max_head_bytes} bytes; send smaller headers"
        )
        log.warning("api.headers_too_large", request_id=request_id, limit=self.max_head_bytes)
        body = json.dumps(
            {
                "error": {
                    "code": "headers_too_large",
                    "message": message,
                    "request_id": request_id,
                    "details": None,
                }
            }
        ).encode()
        head = (
            "HTTP/1.1 431 Request Header Fields Too Large\r\n"
            "content-type: application/json\r\n"
            f"content-length: {len(body)}\r\n"
            f"x-request-id: {request_id}\r\n"
            "connection: close\r\n\r\n"
        ).encode()
        self.transport.write(head + body)
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(LINGER_S, self.transport.close)


def header_limited_protocol(max_head_bytes: int) -> type[HeaderLimitedProtocol]:
    """A ``HeaderLimitedProtocol`` class with this limit (uvicorn builds the protocol itself)."""
    return type(
        "HeaderLimitedProtocol", (HeaderLimitedProtocol,), {"max_head_bytes": max_head_bytes}
    )


class GracefulServer(uvicorn.Server):
    """Runs ``on_exit`` callbacks as soon as shutdown begins, and exits 0 on SIGTERM/SIGINT.

    uvicorn waits for open connections before the lifespan shutdown, so whatever holds one open
    (event streams, a body that never arrives) is told to end here; and it re-raises the signal
    after shutdown (exit by signal), which would skip our own cleanup.
    """

    def __init__(self, config: uvicorn.Config, on_exit: Sequence[Callable[[], None]]) -> None:
        super().__init__(config)
        self._on_exit = tuple(on_exit)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        for callback in self._on_exit:
            callback()
        super().handle_exit(sig, frame)

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.handle_exit, sig, None)
        try:
            yield
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)


def build_server(app: FastAPI, *, host: str, port: int) -> GracefulServer:
    """The server for ``app`` (made by ``create_app``), with its API__* limits applied."""
    settings: Settings = app.state.container.settings()
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        http=header_limited_protocol(settings.api.max_header_bytes),
        log_config=None,
        lifespan="on",
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
    )
    return GracefulServer(config, [app.state.streams_stop.set, app.state.body_reads.end_all])
