"""Session and conversation use cases on the container's data layer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dependency_injector.wiring import Provide, inject

from app.data import (
    ConversationHistoryUnit,
    ConversationMessage,
    ExportFormat,
    ExportManager,
    SessionData,
    SessionManager,
)
from app.data.conversations.models import SearchOrder
from containers.application import Container

__all__ = [
    "create_session",
    "delete_session",
    "export_conversation",
    "get_history",
    "get_session",
    "list_user_sessions",
    "save_message",
    "search_messages",
]


@inject
async def create_session(
    user_id: str,
    metadata: dict[str, Any],
    *,
    sessions: SessionManager = Provide[Container.session_manager],
) -> SessionData:
    """A new session for ``user_id`` (evicting or refusing at the caps)."""
    return await sessions.create_session(user_id, metadata)


@inject
async def get_session(
    session_id: str, *, sessions: SessionManager = Provide[Container.session_manager]
) -> SessionData | None:
    """The live session, its idle timer restarted; None if missing or idle."""
    return await sessions.get_session(session_id)


@inject
async def delete_session(
    session_id: str, *, sessions: SessionManager = Provide[Container.session_manager]
) -> bool:
    """Delete the session; True iff it was live."""
    return await sessions.delete_session(session_id)


@inject
async def list_user_sessions(
    user_id: str, *, sessions: SessionManager = Provide[Container.session_manager]
) -> list[SessionData]:
    """The user's live sessions, most recently active first."""
    return await sessions.list_user_sessions(user_id)


@inject
async def save_message(
    message: ConversationMessage,
    *,
    history: ConversationHistoryUnit = Provide[Container.conversation_history],
) -> int:
    """Store one message; its new id."""
    return await history.save_message(message)


@inject
async def get_history(
    conversation_id: str,
    limit: int,
    *,
    history: ConversationHistoryUnit = Provide[Container.conversation_history],
) -> list[ConversationMessage]:
    """The latest ``limit`` messages of a conversation, oldest first."""
    return await history.get_conversation_history(conversation_id, limit)


@inject
async def search_messages(
    query: str,
    limit: int,
    order: SearchOrder,
    *,
    history: ConversationHistoryUnit = Provide[Container.conversation_history],
) -> list[ConversationMessage]:
    """Full-text search over every conversation."""
    return await history.search_conversations(query, limit, order=order)


@inject
async def export_conversation(
    conversation_id: str,
    fmt: ExportFormat,
    output: Path,
    *,
    exporter: ExportManager = Provide[Container.export_manager],
) -> int:
    """Write one conversation's messages to ``output``; how many."""
    return await exporter.export_conversations([conversation_id], fmt, output)
