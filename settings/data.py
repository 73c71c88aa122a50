"""``SESSIONS__*`` and ``CONVERSATIONS__*``: the data module's sessions and conversation history."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ConversationsSettings", "SessionsSettings"]

_Seconds = Annotated[float, Field(gt=0, le=10 * 365 * 86400, allow_inf_nan=False)]


class SessionsSettings(BaseModel):
    """``SESSIONS__*``: the SessionManager (on the state backend of the deployment mode)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timeout_s: _Seconds = 3600.0
    cleanup_interval_s: _Seconds = 300.0
    max_sessions: int = Field(default=10_000, ge=1)
    max_sessions_per_user: int | None = Field(default=None, ge=1)
    policy: Literal["evict_oldest", "reject"] = "evict_oldest"
    max_metadata_bytes: int = Field(default=64 * 1024, ge=1)


class ConversationsSettings(BaseModel):
    """``CONVERSATIONS__*``: the conversation history table and its input bounds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    table: str = Field(default="conversations", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
    max_field_bytes: int = Field(default=1024 * 1024, ge=1, le=64 * 1024 * 1024)
