"""``/api/conversations``: save and read messages, search them, download an export."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path as FilePath
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask

from app.data import ConversationMessage, ExportFormat
from app.data.conversations.models import MAX_CONVERSATION_ID_CHARS, MAX_LIMIT, MAX_QUERY_CHARS
from app.services import data as service
from app.web.data_schemas import MessageIn, MessageOut, only_query
from app.web.errors import ERROR_RESPONSES
from app.web.json_route import JSONRoute

__all__ = ["router"]

router = APIRouter(
    prefix="/api/conversations",
    tags=["conversations"],
    responses=ERROR_RESPONSES,
    route_class=JSONRoute,
)
# NUL cannot be stored in Postgres text: declared, so clients (and the fuzz) know up front.
ConversationId = Annotated[
    str, Path(min_length=1, max_length=MAX_CONVERSATION_ID_CHARS, pattern=r"^[^\x00]+$")
]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT)]
MEDIA_TYPES = {
    ExportFormat.JSON: "application/json",
    ExportFormat.CSV: "text/csv; charset=utf-8",
    ExportFormat.XML: "application/xml",
    ExportFormat.PARQUET: "application/vnd.apache.parquet",
}


# Registered before "/{conversation_id}/..." routes; the colon keeps it apart from ids anyway.
@router.get(":search", dependencies=[Depends(only_query("q", "limit", "order"))])
async def search(
    q: Annotated[
        str,
        Query(min_length=1, max_length=MAX_QUERY_CHARS, pattern=r"^[^\x00]*[^\x00\s][^\x00]*$"),
    ],
    limit: Limit = 20,
    order: Literal["recency", "relevance"] = "recency",
) -> list[MessageOut]:
    """Full-text search (web syntax: "a phrase", or, -word), newest first or by relevance."""
    return [MessageOut.of(m) for m in await service.search_messages(q, limit, order)]


@router.post("/{conversation_id}/messages", status_code=201)
async def save(conversation_id: ConversationId, body: MessageIn) -> MessageOut:
    """Store one exchange of the conversation."""
    message = ConversationMessage(
        conversation_id=conversation_id,
        user_input=body.user_input,
        agent_response=body.agent_response,
        timestamp=body.timestamp or datetime.now(UTC),
        response_time_ms=body.response_time_ms,
        metadata=body.metadata,
    )
    message.message_id = await service.save_message(message)
    return MessageOut.of(message)


@router.get("/{conversation_id}/messages", dependencies=[Depends(only_query("limit"))])
async def history(conversation_id: ConversationId, limit: Limit = 50) -> list[MessageOut]:
    """The latest ``limit`` messages, oldest first."""
    return [MessageOut.of(m) for m in await service.get_history(conversation_id, limit)]


@router.get(
    "/{conversation_id}/export",
    response_class=FileResponse,
    dependencies=[Depends(only_query("format"))],
    responses={200: {"content": {media: {} for media in MEDIA_TYPES.values()}}},
)
async def export(
    conversation_id: ConversationId,
    format: ExportFormat = ExportFormat.CSV,
) -> FileResponse:
    """The conversation as a file (written to a temporary file, streamed, then removed)."""
    folder = FilePath(await asyncio.to_thread(tempfile.mkdtemp, prefix="export-"))
    output = folder / f"conversation.{format.value}"
    try:
        await service.export_conversation(conversation_id, format, output)
    except BaseException:
        await asyncio.to_thread(shutil.rmtree, folder, True)
        raise
    return FileResponse(
        output,
        media_type=MEDIA_TYPES[format],
        filename=output.name,
        background=BackgroundTask(shutil.rmtree, folder, True),
    )
