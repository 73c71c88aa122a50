"""Sessions on the state backend: one behaviour in memory and in Redis (contract E)."""

from app.data.sessions.manager import SessionManager, session_store_for
from app.data.sessions.memory_store import InMemorySessionStore
from app.data.sessions.models import SessionConfig, SessionData
from app.data.sessions.redis_store import RedisSessionStore
from app.data.sessions.store import SessionStore

__all__ = [
    "InMemorySessionStore",
    "RedisSessionStore",
    "SessionConfig",
    "SessionData",
    "SessionManager",
    "SessionStore",
    "session_store_for",
]
