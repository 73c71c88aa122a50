"""``/v1/events``: publish, and a server-sent event stream of the events matching a pattern."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import structlog
from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

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


async def _sse(pattern: str, stop: asyncio.Event) -> AsyncIterator[bytes]:
    async with await service.open_event_stream(pattern) as events:
        yield b": subscribed\n\n"
        while not stop.is_set():
            event = await events.next(stop, HEARTBEAT_S)
            if event is None:
                if not stop.is_set():
                    yield b": heartbeat\n\n"
                continue
            data = codec.encode(event, SSE_MAX_EVENT_BYTES).body.decode()
            yield f"id: {event.id}\nevent: {event.type}\ndata: {data}\n\n".encode()


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

    The stream ends when the client disconnects or the server shuts down.
    """
    stop: asyncio.Event = request.app.state.streams_stop
    return StreamingResponse(
        _sse(pattern, stop),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
