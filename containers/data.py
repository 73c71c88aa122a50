"""The data layer: sessions on the state backend, conversation history on Postgres (after the
database client's migrations), export and import.

``session_manager`` runs its expired-session cleanup every ``SESSIONS__CLEANUP_INTERVAL_S``
while started; ``conversation_history`` creates its table if the migrations have not. Both are
Resources the lifecycle starts after what they stand on (units ``sessions`` and
``conversations``); override either with ``providers.Object(...)`` in tests.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
from dependency_injector import containers, providers

from app.data import (
    ConversationHistoryUnit,
    ExportManager,
    ImportManager,
    SessionConfig,
    SessionManager,
)
from app.state import StateBackend
from containers.declarations import Managed, ping_method
from settings import DeploymentMode, Settings

__all__ = ["DataContainer", "conversation_history", "session_config", "session_manager"]


def _sessions_address(settings: Settings) -> str:
    if settings.deployment_mode is DeploymentMode.DISTRIBUTED:
        return settings.redis.address()
    return "memory"


def _conversations_address(settings: Settings) -> str:
    where = "embedded" if settings.embedded_postgres else settings.postgres.address()
    return f"{where} table {settings.conversations.table}"


def session_config(settings: Settings) -> SessionConfig:
    """``SESSIONS__*`` as a SessionConfig."""
    section = settings.sessions
    return SessionConfig(
        session_timeout=section.timeout_s,
        cleanup_interval=section.cleanup_interval_s,
        max_sessions=section.max_sessions,
        max_sessions_per_user=section.max_sessions_per_user,
        policy=section.policy,
        max_metadata_bytes=section.max_metadata_bytes,
    )


async def session_manager(settings: Settings, state: StateBackend) -> AsyncIterator[SessionManager]:
    """A SessionManager on the state backend's store, its periodic cleanup running until stop."""
    manager = SessionManager(session_config(settings), backend=state)
    await manager.initialize()
    try:
        yield manager
    finally:
        await manager.shutdown()


async def conversation_history(
    settings: Settings, postgres: asyncpg.Pool, database: Any, create_tables: bool = True
) -> AsyncIterator[ConversationHistoryUnit]:
    """The history unit on the Postgres pool, its table created if still missing (unless
    ``create_tables`` is False: ``python -m app check`` writes nothing).

    ``database`` is not used: it is a dependency so that the database client, whose start
    applies the migrations (0300 creates the default table), starts first.
    """
    del database
    history = ConversationHistoryUnit(
        postgres,
        settings.conversations.table,
        max_field_bytes=settings.conversations.max_field_bytes,
    )
    if create_tables:
        await history.initialize()
    else:
        await history.ping()
    try:
        yield history
    finally:
        await history.shutdown()


class DataContainer(containers.DeclarativeContainer):
    """Sessions, conversations, and the export/import managers over them."""

    settings = providers.Dependency(instance_of=Settings)
    state_backend: providers.Dependency[StateBackend] = providers.Dependency()
    postgres: providers.Dependency[asyncpg.Pool] = providers.Dependency()
    database: providers.Dependency[Any] = providers.Dependency()

    create_tables = providers.Object(True)

    session_manager = providers.Resource(session_manager, settings, state_backend)
    session_manager_lifecycle = Managed(
        "session_manager", name="sessions", ping=ping_method, address=_sessions_address
    )
    conversation_history = providers.Resource(
        conversation_history, settings, postgres, database, create_tables
    )
    conversation_history_lifecycle = Managed(
        "conversation_history",
        name="conversations",
        ping=ping_method,
        address=_conversations_address,
    )
    export_manager = providers.Factory(
        ExportManager, history=conversation_history, sessions=session_manager
    )
    import_manager = providers.Factory(ImportManager, history=conversation_history)
