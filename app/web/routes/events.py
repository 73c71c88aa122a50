"""``/v1/events``: publish, and a server-sent event stream of the events matching a pattern."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import structlog
from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from app.events import DataEvent, codec
from app.services import events as service
from app.web.errors import ERROR_RESPONSES
from app.web.json_route import JSONRoute
from app.web.schemas import EventIn, EventOut

__all__ = ["router"]

log = structlog.get_logger(__name__)

router = APIRouter(
    prefix="/v1/events", tags=["events"], responses=ERROR_RESPONSES, route_class=JSONRoute
)
HEARTBEAT_S = 15.0
# Events reaching a stream were size-checked at publish; this bound only guards the encoder.
SSE_MAX_EVENT_BYTES = 1 << 30


@router.post("", status_code=202)
async def publish(body: EventIn) -> EventOut:
    """Publish a ``DataEvent``; 202 once the bus has accepted it."""
    event = DataEvent(
        type=body.type,
        resource=body.resource,
        key=body.key,
        payload=body.payload,
        source=body.source,
        version=body.version,
    )
    await service.publish_event(event)
    return EventOut(id=str(event.id), type=event.type, timestamp=event.timestamp)


def sse_field(name: str, value: str) -> str:
    """One ``name: value`` line of a server-sent event.

    A CR or LF in ``value`` would end the line there and let the rest pose as further
    fields or events (SSE injection), so such a value is refused with ``ValueError``.
    """
    if "\n" in value or "\r" in value:
        raise ValueError(
            f"server-sent event field {name!r} must be one line without CR or LF, got {value!r}"
        )
    return f"{name}: {value}\n"


def _event_frame(event: DataEvent) -> bytes:
    """The server-sent event of ``event``; ``ValueError`` if it cannot be written safely."""
    data = codec.encode(event, SSE_MAX_EVENT_BYTES).body.decode()  # ASCII JSON: one line
    return (
        sse_field("id", str(event.id)) + sse_field("event", event.type) + sse_field("data", data)
    ).encode() + b"\n"


async def _sse(events: service.EventStream, stop: asyncio.Event) -> AsyncIterator[bytes]:
    yield b": subscribed\n\n"
    while not stop.is_set():
        try:
            event = await events.next(stop, HEARTBEAT_S)
        except service.StreamOverflowError as exc:
            # The stream ends cleanly, saying why, rather than with a cut connection.
            log.warning("api.event_stream_overflow", error=str(exc))
            body = json.dumps({"error": {"code": "stream_overflow", "message": str(exc)}})
            yield (sse_field("event", "error") + sse_field("data", body) + "\n").encode()
            return
        if event is None:
            if not stop.is_set():
                yield b": heartbeat\n\n"
            continue
        try:
            frame = _event_frame(event)
        except ValueError as exc:
            # Both buses refuse such an event at publish (B3); should one get through anyway,
            # it is dropped here rather than written as forged lines, and the stream goes on.
            log.warning("api.event_stream_event_refused", event_id=str(event.id), error=str(exc))
            continue
        yield frame


class _EventStreamResponse(StreamingResponse):
    """Streams a subscription that is already live, and ends it however the response ends
    (client gone, shutdown, error), even if the body was never started."""

    def __init__(self, events: service.EventStream, stop: asyncio.Event) -> None:
        super().__init__(
            _sse(events, stop),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )
        self._events = events

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._events.close()


@router.get(
    "/stream",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "event stream"}},
)
async def stream(
    request: Request,
    pattern: str = Query(default="#", min_length=1, max_length=255),
) -> StreamingResponse:
    """Server-sent events for every event matching ``pattern`` (``*`` one word, ``#`` any).

    The subscription is live before the 200 is sent: a malformed pattern is a 422 and a
    closed bus a 503, in the usual error shape. The stream ends when the client disconnects
    or the server shuts down; a consumer that falls too far behind gets an ``error`` event
    and the stream ends.
    """
    stop: asyncio.Event = request.app.state.streams_stop
    events = await service.open_event_stream(pattern)
    await events.open()
    return _EventStreamResponse(events, stop)
