"""The ``/v1`` routers."""

from app.web.routes import events, locks, sessions, vectors

__all__ = ["events", "locks", "sessions", "vectors"]
