"""Request and response bodies of the ``/api`` session and conversation routes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from app.data import ConversationMessage, SessionData
from app.data.conversations.models import MAX_CONVERSATION_ID_CHARS
from app.data.sessions.models import MAX_ID_CHARS

__all__ = ["MessageIn", "MessageOut", "SessionCreate", "SessionOut"]

UserId = Annotated[str, Field(min_length=1, max_length=MAX_ID_CHARS)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SessionCreate(_Strict):
    """A session to create for ``user_id``, with optional metadata (a JSON object)."""

    user_id: UserId
    metadata: dict[str, Any] = Field(default_factory=dict)


class SessionOut(BaseModel):
    """A live session."""

    session_id: str
    user_id: str
    created_at: datetime
    last_activity: datetime
    metadata: dict[str, Any]
    is_active: bool

    @classmethod
    def of(cls, session: SessionData) -> SessionOut:
        return cls(
            session_id=session.session_id,
            user_id=session.user_id,
            created_at=session.created_at,
            last_activity=session.last_activity,
            metadata=session.metadata,
            is_active=session.is_active,
        )


class MessageIn(_Strict):
    """One exchange to store; ``timestamp`` defaults to now and needs a UTC offset if given."""

    user_input: str
    agent_response: str
    response_time_ms: Annotated[float, Field(ge=0, allow_inf_nan=False)]
    timestamp: datetime | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class MessageOut(BaseModel):
    """A stored message."""

    message_id: int | None
    conversation_id: Annotated[str, Field(max_length=MAX_CONVERSATION_ID_CHARS)]
    user_input: str
    agent_response: str
    timestamp: datetime
    response_time_ms: float
    metadata: dict[str, Any]

    @classmethod
    def of(cls, message: ConversationMessage) -> MessageOut:
        return cls(
            message_id=message.message_id,
            conversation_id=message.conversation_id,
            user_input=message.user_input,
            agent_response=message.agent_response,
            timestamp=message.timestamp,
            response_time_ms=message.response_time_ms,
            metadata=message.metadata,
        )
