"""Conversation history on Postgres with full-text search (contract F, CV1-CV4)."""

from app.data.conversations.history import ConversationHistoryUnit
from app.data.conversations.models import ConversationMessage, ConversationQuery

__all__ = ["ConversationHistoryUnit", "ConversationMessage", "ConversationQuery"]
