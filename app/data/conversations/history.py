"""``ConversationHistoryUnit``: conversation messages in Postgres, with full-text search.

Contract F (CV1-CV4, ``docs/contracts/conversations.md``). Each call acquires one pooled
connection for its whole unit of work. Search (``app.data.conversations.search``) runs on the
GIN index of the generated ``search`` column and the time index, newest first by default or
ranked by ``ts_rank`` among a bounded candidate set.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, Final

import asyncpg
import structlog
from asyncpg.pool import PoolConnectionProxy

from app.data.conversations.models import (
    DEFAULT_MAX_FIELD_BYTES,
    ConversationMessage,
    ConversationQuery,
    SearchOrder,
    check_conversation_id,
    check_limit,
    check_query,
    check_table_name,
    quoted_table,
)
from app.data.conversations.schema import COLUMNS, render_ddl
from app.data.conversations.search import RECENT_WINDOW, RELEVANCE_CANDIDATES, SearchStatements
from app.data.errors import ConversationStoreError, InvalidConversationError

__all__ = ["ConversationHistoryUnit", "pool_of"]

log = structlog.get_logger(__name__)

COPY_THRESHOLD: Final = 200  # batches from this size go through COPY
DRIVER_ERRORS: Final = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)
_COPY_COLUMNS: Final = (
    "id",
    "conversation_id",
    "timestamp",
    "user_input",
    "agent_response",
    "response_time_ms",
    "metadata",
)


def pool_of(database: Any) -> asyncpg.Pool:
    """The asyncpg pool behind ``database``: a pool itself, or a client with ``.pool``."""
    if isinstance(database, asyncpg.Pool):
        return database
    pool = getattr(database, "pool", None)
    if isinstance(pool, asyncpg.Pool):
        return pool
    raise TypeError(
        f"database must be an asyncpg.Pool or a client with a .pool attribute; got "
        f"{type(database).__name__}"
    )


def message_from(record: asyncpg.Record) -> ConversationMessage:
    """A stored row (``COLUMNS`` order) as a ConversationMessage (asyncpg hands ``timestamptz``
    out as an aware datetime in UTC)."""
    return ConversationMessage(
        conversation_id=record[1],
        user_input=record[3],
        agent_response=record[4],
        timestamp=record[2],
        response_time_ms=record[5],
        message_id=record[0],
        metadata=json.loads(record[6]),
    )


class ConversationHistoryUnit:
    """Messages of many conversations in one table (``table_name``, default conversations)."""

    def __init__(
        self,
        database: Any,
        table_name: str = "conversations",
        *,
        max_field_bytes: int = DEFAULT_MAX_FIELD_BYTES,
    ) -> None:
        self.pool = pool_of(database)
        self.table_name = check_table_name(table_name)
        self.table = quoted_table(table_name)
        self.max_field_bytes = max_field_bytes
        self._sequence_sql = f"SELECT pg_get_serial_sequence('{self.table}', 'id')"
        columns = COLUMNS
        self._history_sql = (
            f"SELECT {columns} FROM (SELECT {columns} FROM {self.table} "  # noqa: S608 (checked, quoted identifier)
            "WHERE conversation_id = $1 ORDER BY timestamp DESC, id DESC LIMIT $2) AS page "
            "ORDER BY timestamp, id"
        )
        self._search = SearchStatements.for_table(self.table, columns)
        self.recent_window = RECENT_WINDOW  # see app.data.conversations.search

    @asynccontextmanager
    async def connection(self, what: str) -> AsyncIterator[PoolConnectionProxy[asyncpg.Record]]:
        """A pooled connection; driver errors become ConversationStoreError naming ``what``."""
        try:
            async with self.pool.acquire() as conn:
                yield conn
        except DRIVER_ERRORS as exc:
            raise ConversationStoreError(
                f"Postgres failed {what} on {self.table_name}: {type(exc).__name__}: {exc}"
            ) from exc

    async def initialize(self) -> None:
        """Create the table and its indexes if missing (idempotent, safe to race)."""
        index_prefix = self.table_name.split(".")[-1].lower()
        async with self.connection("initialize") as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", self.table)
            await conn.execute(render_ddl(self.table, index_prefix))
        log.debug("conversations.initialized", table=self.table_name)

    async def shutdown(self) -> None:
        """Nothing to release: the pool belongs to the caller."""

    async def ping(self) -> bool:
        """True if Postgres answers."""
        async with self.connection("ping") as conn:
            await conn.fetchval("SELECT 1")
        return True

    # -- writing ----------------------------------------------------------------------------

    async def save_message(self, message: ConversationMessage) -> int:
        """Store one message; its new message id."""
        ids = await self.save_messages_batch([message])
        return ids[0]

    async def save_messages_batch(self, messages: Sequence[ConversationMessage]) -> list[int]:
        """Store the messages in one transaction (all or none); their ids, in order (CV1).

        Ids are drawn from the table's sequence first; batches of ``COPY_THRESHOLD`` or more
        are written with COPY, smaller ones with one ``INSERT ... SELECT unnest(...)``.
        """
        rows = []
        for index, message in enumerate(messages):
            if not isinstance(message, ConversationMessage):
                raise InvalidConversationError(
                    f"message {index} must be a ConversationMessage; got {type(message).__name__}"
                )
            try:
                rows.append(message.validated(self.max_field_bytes))
            except InvalidConversationError as exc:
                raise InvalidConversationError(f"message {index}: {exc}") from exc
        if not rows:
            return []
        async with self.connection("save_messages_batch") as conn, conn.transaction():
            sequence = await conn.fetchval(self._sequence_sql)
            ids: list[int] = [
                record[0]
                for record in await conn.fetch(
                    "SELECT nextval($1::regclass) FROM generate_series(1, $2)",
                    sequence,
                    len(rows),
                )
            ]
            if len(rows) >= COPY_THRESHOLD:
                await conn.copy_records_to_table(
                    self.table_name.split(".")[-1].lower(),
                    schema_name=self._schema(),
                    columns=_COPY_COLUMNS,
                    records=[(ident, *row) for ident, row in zip(ids, rows, strict=True)],
                )
            else:
                columns = list(zip(*rows, strict=True))
                await conn.execute(
                    f"INSERT INTO {self.table} ({', '.join(_COPY_COLUMNS)}) "  # noqa: S608 (checked, quoted identifier)
                    "SELECT * FROM unnest($1::bigint[], $2::text[], $3::timestamptz[], "
                    "$4::text[], $5::text[], $6::float8[], $7::jsonb[])",
                    ids,
                    *[list(column) for column in columns],
                )
        return ids

    def _schema(self) -> str | None:
        parts = self.table_name.lower().split(".")
        return parts[0] if len(parts) == 2 else None

    async def clear(self) -> None:
        """Delete every message of the table."""
        async with self.connection("clear") as conn:
            await conn.execute(f"TRUNCATE {self.table}")

    async def delete_conversation(self, conversation_id: str) -> int:
        """Delete a conversation's messages; how many were deleted."""
        check_conversation_id(conversation_id)
        async with self.connection("delete_conversation") as conn:
            sql = f"DELETE FROM {self.table} WHERE conversation_id = $1"  # noqa: S608 (quoted)
            status = await conn.execute(sql, conversation_id)
        return int(status.split()[-1])

    # -- reading ----------------------------------------------------------------------------

    async def get_conversation_history(
        self, conversation_id: str, limit: int = 50
    ) -> list[ConversationMessage]:
        """The latest ``limit`` messages of the conversation, oldest first (CV2)."""
        check_conversation_id(conversation_id)
        capped = check_limit(limit)
        async with self.connection("get_conversation_history") as conn:
            records = await conn.fetch(self._history_sql, conversation_id, capped)
        return [message_from(record) for record in records]

    async def search_conversations(
        self, query: str, limit: int = 100, *, order: SearchOrder = "recency"
    ) -> list[ConversationMessage]:
        """Messages matching ``query`` (web-search syntax: ``"a phrase"``, ``or``, ``-word``),
        newest first, or by relevance (CV3).

        Relevance ranks up to RELEVANCE_CANDIDATES matches among the RECENT_WINDOW newest
        messages, or, when fewer than ``limit`` match there, the RELEVANCE_CANDIDATES newest
        matches overall.
        """
        text = check_query(query)
        capped = check_limit(limit)
        if order not in ("recency", "relevance"):
            raise InvalidConversationError(f"order must be 'recency' or 'relevance'; got {order!r}")
        search = self._search
        async with self.connection("search_conversations") as conn:
            if order == "recency":
                records = await conn.fetch(search.window, text, capped, self.recent_window)
                if len(records) < capped:
                    records = await conn.fetch(search.everything, text, capped)
            else:
                records = await conn.fetch(
                    search.window_ranked, text, RELEVANCE_CANDIDATES, self.recent_window, capped
                )
                if len(records) < capped:
                    records = await conn.fetch(
                        search.everything_ranked, text, RELEVANCE_CANDIDATES, capped
                    )
        return [message_from(record) for record in records]

    async def query_conversations(self, query: ConversationQuery) -> list[ConversationMessage]:
        """Messages matching every filter of ``query``, newest first (CV4)."""
        if not isinstance(query, ConversationQuery):
            raise InvalidConversationError(
                f"query must be a ConversationQuery; got {type(query).__name__}"
            )
        sql, args = query.to_sql(COLUMNS, self.table)
        async with self.connection("query_conversations") as conn:
            records = await conn.fetch(sql, *args)
        return [message_from(record) for record in records]
