"""The server-sent event body: heartbeats, events, and a clean end when the consumer lags."""

from __future__ import annotations

import asyncio
import json
from typing import cast

from app.events import DataEvent
from app.services.events import EventStream, StreamOverflowError
from app.web.routes.events import _sse


class ScriptedStream:
    """Hands out a fixed sequence of results of ``next``; an exception is raised."""

    def __init__(self, *results: DataEvent | BaseException | None) -> None:
        self._results = list(results)

    async def next(self, stop: asyncio.Event, timeout_s: float) -> DataEvent | None:
        result = self._results.pop(0)
        if isinstance(result, BaseException):
            raise result
        return result


async def frames(stream: ScriptedStream) -> list[bytes]:
    return [frame async for frame in _sse(cast(EventStream, stream), asyncio.Event())]


async def test_a_lagging_consumer_gets_an_error_event_and_the_stream_ends() -> None:
    """A consumer that fell too far behind gets an error event, then the stream ends cleanly."""
    event = DataEvent(type="user.created", resource="user", key="u1")
    lagged = StreamOverflowError("stream for '#' fell 1000 events behind")
    sent = await frames(ScriptedStream(None, event, lagged))
    assert sent[0] == b": subscribed\n\n"
    assert sent[1] == b": heartbeat\n\n"
    assert sent[2].startswith(f"id: {event.id}\nevent: user.created\ndata: ".encode())
    name, data = sent[3].decode().rstrip("\n").split("\n")
    assert name == "event: error"
    error = json.loads(data.removeprefix("data: "))["error"]
    assert error == {"code": "stream_overflow", "message": str(lagged)}
    assert len(sent) == 4
