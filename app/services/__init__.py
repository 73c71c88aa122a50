"""Use cases as plain async functions; their collaborators come from the container via ``@inject``.

No HTTP types here: the web layer, a worker or a script can call them alike, once the
container is wired (``container.wire()`` with its ``WiringConfiguration``).
"""

from app.services import entities, events, locks, rate_limits, sessions, vectors

__all__ = ["entities", "events", "locks", "rate_limits", "sessions", "vectors"]
