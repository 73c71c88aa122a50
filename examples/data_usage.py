"""The data module's usage, as the original design's examples wrote it, in either mode.

Data units, the conversation history, sessions and export/import, on what the container starts
for ``DEPLOYMENT_MODE``: the embedded Postgres and in-memory sessions in ``single_node``;
``POSTGRES__DSN`` and Redis (``REDIS__URL``) in ``distributed``::

    python -m examples.data_usage
    DEPLOYMENT_MODE=distributed POSTGRES__DSN=postgresql://postgres@127.0.0.1:5432/test \\
        REDIS__URL=redis://127.0.0.1:6379/0 python -m examples.data_usage

Only the imports differ from the original examples.
"""

from __future__ import annotations

import asyncio
import tempfile
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from app.data import (
    ConversationHistoryUnit,
    ConversationMessage,
    ConversationQuery,
    DataUnitConfig,
    DataUnitFile,
    DataUnitMemory,
    DataUnitStream,
    DataUnitString,
    ExportFormat,
    ExportManager,
    ImportManager,
    SessionConfig,
    SessionManager,
)
from containers import build_lifecycle, create_container
from containers.accessors import resolve

__all__ = ["main"]


async def data_units_example(folder: Path) -> None:
    """Memory, file, string and stream units."""
    config = DataUnitConfig(data_type="memory", name="my_data")
    data_unit = DataUnitMemory(config)
    await data_unit.initialize()
    await data_unit.set({"message": "Hello World"})
    data = await data_unit.get()
    print(f"memory unit: {data}")
    await data_unit.shutdown()

    file_unit = DataUnitFile(str(folder / "state.json"))
    await file_unit.initialize()
    await file_unit.set({"step": 1, "results": [0.5, 0.25]})
    print(f"file unit: {await file_unit.get()}")

    text_unit = DataUnitString("Hello")
    await text_unit.append(", world")
    print(f"string unit: {await text_unit.get()}")

    stream = DataUnitStream(DataUnitConfig(data_type="stream", cache_size=100))
    queue = await stream.subscribe()
    await stream.set("first update")
    print(f"stream subscriber got: {await queue.get()}")
    await stream.unsubscribe(queue)
    await stream.shutdown()


async def conversation_history_example(database: Any, table_name: str) -> ConversationHistoryUnit:
    """Store a conversation, read it back, search it, query it."""
    history_unit = ConversationHistoryUnit(database, table_name=table_name)
    await history_unit.initialize()

    now = datetime.now()
    await history_unit.save_message(
        ConversationMessage(
            conversation_id="conv_123",
            user_input="Hello, can you help me with a refund?",
            agent_response="Of course! Your refund is on its way.",
            timestamp=now,
            response_time_ms=150.0,
            metadata={"channel": "web"},
        )
    )
    await history_unit.save_messages_batch(
        [
            ConversationMessage("conv_123", f"Question {i}", f"Answer {i}", now, 90.0 + i)
            for i in range(3)
        ]
    )
    history = await history_unit.get_conversation_history("conv_123", limit=10)
    print(f"history: {len(history)} messages, first: {history[0].user_input!r}")

    results = await history_unit.search_conversations("refund", limit=5)
    print(f"search 'refund': {[m.user_input for m in results]}")

    query = (
        ConversationQuery()
        .conversation_id("conv_123")
        .date_range(now - timedelta(hours=1), now + timedelta(hours=1))
        .contains_text("refund")
        .min_response_time(100)
        .limit(10)
    )
    found = await history_unit.query_conversations(query)
    print(f"query: {len(found)} message(s) took >= 100 ms and mention a refund")
    return history_unit


async def session_manager_example(state_backend: Any) -> SessionManager:
    """Create, read, update, list and clean up sessions."""
    config = SessionConfig(
        session_timeout=1800, cleanup_interval=300, max_sessions=1000, max_sessions_per_user=5
    )
    manager = SessionManager(config, backend=state_backend)
    await manager.initialize()

    session = await manager.create_session("user_1", {"theme": "dark"})
    print(f"session {session.session_id[:8]}... for {session.user_id}")
    updated = await manager.update_session(session.session_id, {"last_page": "/settings"})
    print(f"session metadata: {updated.metadata}")
    same = await manager.get_session(session.session_id)
    assert same is not None
    print(f"sessions of user_1: {len(await manager.list_user_sessions('user_1'))}")
    print(f"expired sessions removed: {await manager.cleanup_expired_sessions()}")
    return manager


async def export_import_example(
    history: ConversationHistoryUnit, sessions: SessionManager, folder: Path
) -> None:
    """Export a conversation in every format and import it back with skip_duplicates."""
    exporter = ExportManager(history, sessions)
    importer = ImportManager(history)
    for fmt in ExportFormat:
        path = folder / f"conv_123.{fmt.value}"
        count = await exporter.export_conversations(["conv_123"], fmt, path)
        counts = await importer.import_conversations(path, fmt, merge_strategy="skip_duplicates")
        print(f"{fmt.value}: exported {count}, re-imported {counts.as_dict()}")
    live = await sessions.list_user_sessions("user_1")
    written = await exporter.export_sessions(
        [s.session_id for s in live], ExportFormat.JSON, folder / "sessions.json"
    )
    print(f"sessions exported: {written}")


async def main() -> None:
    """Start what the configured mode needs, run every example, stop."""
    container = create_container()
    settings = container.settings()
    async with build_lifecycle(container):
        database = await resolve(container.postgres)
        state_backend = await resolve(container.state_backend)
        with tempfile.TemporaryDirectory() as scratch:
            folder = Path(scratch)
            await data_units_example(folder)
            history = await conversation_history_example(database, settings.conversations.table)
            sessions = await session_manager_example(state_backend)
            try:
                await export_import_example(history, sessions, folder)
            finally:
                await sessions.shutdown()
    print(f"done ({settings.deployment_mode.value})")


if __name__ == "__main__":
    asyncio.run(main())
