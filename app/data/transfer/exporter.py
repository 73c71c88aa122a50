"""``ExportManager``: conversations and sessions to JSON, CSV, XML or Parquet files.

Conversations stream from Postgres in bounded memory: CSV is Postgres' own ``COPY ... TO
STDOUT`` written straight to the file; the other formats read a server-side cursor a batch at
a time. A file is written beside its target as ``<name>.part`` and renamed when complete, so a
failed export leaves no half file behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from app.data.conversations.history import ConversationHistoryUnit
from app.data.conversations.models import check_conversation_id
from app.data.errors import TransferError
from app.data.sessions.manager import SessionManager
from app.data.transfer.formats import (
    MESSAGE_FIELDS,
    SESSION_FIELDS,
    ExportFormat,
    check_fields,
    parse_format,
)
from app.data.transfer.writers import open_writer

__all__ = ["ExportManager"]

BATCH_ROWS: Final = 2000
MAX_IDS: Final = 100_000
_COLUMN_OF: Final = {"message_id": "id AS message_id"}


def _ids(values: Sequence[str] | None, what: str) -> list[str] | None:
    if values is None:
        return None
    if isinstance(values, str) or len(values) > MAX_IDS:
        raise TransferError(f"{what} must be a list of at most {MAX_IDS} ids (or None for all)")
    return [check_conversation_id(value) for value in values]


class ExportManager:
    """Writes conversations (from a history unit) and sessions (from a session manager)."""

    def __init__(
        self, history: ConversationHistoryUnit | None = None, sessions: SessionManager | None = None
    ) -> None:
        self.history = history
        self.sessions = sessions

    def message_query(
        self, conversation_ids: Sequence[str] | None, fields: tuple[str, ...]
    ) -> tuple[str, list[Any]]:
        """The SELECT of an export (ordered by message id) and its arguments."""
        history = self._history()
        select = ", ".join(_COLUMN_OF.get(name, name) for name in fields)
        ids = _ids(conversation_ids, "conversation_ids")
        if ids is None:
            return f"SELECT {select} FROM {history.table} ORDER BY id", []  # noqa: S608 (quoted)
        sql = f"SELECT {select} FROM {history.table} WHERE conversation_id = ANY($1::text[]) "  # noqa: S608
        return sql + "ORDER BY id", [ids]

    def _history(self) -> ConversationHistoryUnit:
        if self.history is None:
            raise TransferError("this ExportManager has no ConversationHistoryUnit to export from")
        return self.history

    async def export_conversations(
        self,
        conversation_ids: Sequence[str] | None,
        format: ExportFormat | str,
        output_file: str | Path,
        include_metadata: bool = True,
        fields: Sequence[str] | None = None,
    ) -> int:
        """Write the messages of ``conversation_ids`` (None: all) to ``output_file``; how many."""
        fmt = parse_format(format)
        chosen = check_fields(
            list(fields) if fields is not None else list(MESSAGE_FIELDS), MESSAGE_FIELDS
        )
        if not include_metadata:
            chosen = tuple(name for name in chosen if name != "metadata")
        sql, args = self.message_query(conversation_ids, chosen)
        target = Path(output_file)
        part = target.with_name(target.name + ".part")
        try:
            async with (
                self._history().connection("export_conversations") as conn,
                conn.transaction(readonly=True),
            ):
                await conn.execute("SET LOCAL TIME ZONE 'UTC'")
                if fmt is ExportFormat.CSV:
                    status = await conn.copy_from_query(
                        sql, *args, output=part, format="csv", header=True
                    )
                    count = int(status.split()[-1])
                else:
                    cursor = await conn.cursor(sql, *args)
                    count = await self._write_batches(cursor, fmt, part, chosen)
            await asyncio.to_thread(os.replace, part, target)
        finally:
            await asyncio.to_thread(part.unlink, missing_ok=True)
        return count

    async def _write_batches(
        self, cursor: Any, fmt: ExportFormat, part: Path, fields: tuple[str, ...]
    ) -> int:
        writer, handle = await asyncio.to_thread(
            open_writer, fmt, part, fields, root="conversations", item="message"
        )
        count = 0
        try:
            while rows := await cursor.fetch(BATCH_ROWS):
                await asyncio.to_thread(writer.write, [tuple(row) for row in rows])
                count += len(rows)
            await asyncio.to_thread(writer.close)
        finally:
            if handle is not None:
                await asyncio.to_thread(handle.close)
        return count

    async def export_sessions(
        self,
        session_ids: Sequence[str],
        format: ExportFormat | str,
        output_file: str | Path,
    ) -> int:
        """Write the live sessions among ``session_ids`` (read without touching them)."""
        if self.sessions is None:
            raise TransferError("this ExportManager has no SessionManager to export from")
        fmt = parse_format(format)
        if isinstance(session_ids, str) or len(session_ids) > MAX_IDS:
            raise TransferError(f"session_ids must be a list of at most {MAX_IDS} ids")
        rows = []
        for session_id in session_ids:
            session = await self.sessions.peek_session(session_id)
            if session is not None:
                rows.append(
                    (
                        session.session_id,
                        session.user_id,
                        session.created_at,
                        session.last_activity,
                        json.dumps(session.metadata),
                        session.is_active,
                    )
                )
        target = Path(output_file)
        part = target.with_name(target.name + ".part")

        def write() -> None:
            writer, handle = open_writer(fmt, part, SESSION_FIELDS, root="sessions", item="session")
            try:
                writer.write(rows)
                writer.close()
            finally:
                if handle is not None:
                    handle.close()
            os.replace(part, target)

        try:
            await asyncio.to_thread(write)
        finally:
            with contextlib.suppress(FileNotFoundError):
                await asyncio.to_thread(part.unlink)
        return len(rows)
