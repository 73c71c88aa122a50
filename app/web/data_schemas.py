"""Request and response bodies of the ``/api`` session and conversation routes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import Request
from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field

from app.data import ConversationMessage, SessionData
from app.data.conversations.models import MAX_CONVERSATION_ID_CHARS
from app.data.sessions.models import MAX_ID_CHARS
from app.web.errors import ApiError

__all__ = ["MessageIn", "MessageOut", "SessionCreate", "SessionOut", "only_query"]

UserId = Annotated[str, Field(min_length=1, max_length=MAX_ID_CHARS)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


def only_query(*names: str) -> Callable[[Request], Awaitable[None]]:
    """A route dependency refusing query parameters other than ``names`` (a 422 naming them),
    as bodies refuse unknown fields: a misspelt ``limt=5`` is not silently ignored."""
    allowed = frozenset(names)

    async def check(request: Request) -> None:
        unknown = sorted(set(request.query_params) - allowed)
        if unknown:
            raise ApiError(
                422,
                "invalid_request",
                f"unknown query parameter(s) {unknown}; this route takes {sorted(allowed)}",
            )

    return check


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


def _date_time_text(value: object) -> object:
    """JSON has no date-time type: only an ISO 8601 string is one (not a number of seconds)."""
    if value is not None and not isinstance(value, str):
        raise ValueError("expected an ISO 8601 date-time string with a UTC offset")
    return value


class MessageIn(_Strict):
    """One exchange to store; ``timestamp`` defaults to now and needs a UTC offset if given."""

    user_input: str
    agent_response: str
    response_time_ms: Annotated[float, Field(ge=0, allow_inf_nan=False)]
    timestamp: Annotated[
        AwareDatetime | None, Field(strict=False), BeforeValidator(_date_time_text)
    ] = None
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
