"""Contract F, CV1-CV4: conversation history on a real Postgres (a schema per test)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from app.data import (
    ConversationHistoryUnit,
    ConversationMessage,
    ConversationQuery,
    ConversationStoreError,
    InvalidConversationError,
)
from app.data.conversations.models import MAX_LIMIT, quoted_table
from app.data.conversations.schema import render_ddl

pytestmark = pytest.mark.integration

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def message(
    conv: str, minute: int, text: str = "hello", answer: str = "hi there", **kw: object
) -> ConversationMessage:
    """A message ``minute`` minutes after T0."""
    return ConversationMessage(
        conversation_id=conv,
        user_input=text,
        agent_response=answer,
        timestamp=T0 + timedelta(minutes=minute),
        response_time_ms=kw.pop("rt", 12.5),  # type: ignore[arg-type]
        metadata=kw.pop("metadata", {}),  # type: ignore[arg-type]
    )


async def test_cv1_save_assigns_ids_and_history_reads_them_back(
    history: ConversationHistoryUnit,
) -> None:
    """CV1/CV2: saved messages get increasing ids and come back with every field intact."""
    first = await history.save_message(message("c1", 0, metadata={"lang": "en", "n": [1, 2]}))
    second = await history.save_message(message("c1", 1, text="again"))
    assert second > first
    got = await history.get_conversation_history("c1", 10)
    assert [m.message_id for m in got] == [first, second]
    assert got[0].metadata == {"lang": "en", "n": [1, 2]}
    assert got[0].timestamp == T0
    assert got[1].user_input == "again"
    assert got[0].response_time_ms == 12.5


@pytest.mark.parametrize("size", [5, 500])
async def test_cv1_batch_is_all_or_nothing(history: ConversationHistoryUnit, size: int) -> None:
    """CV1: a batch (INSERT or COPY path) with one bad message stores none of them."""
    good = [message("c", i) for i in range(size)]
    bad = [*good[:-1], message("c", size, rt=-1.0)]
    with pytest.raises(InvalidConversationError, match=rf"message {size - 1}: response_time_ms"):
        await history.save_messages_batch(bad)
    assert await history.get_conversation_history("c", 1000) == []
    ids = await history.save_messages_batch(good)
    assert len(ids) == size
    assert ids == sorted(ids)
    stored = await history.get_conversation_history("c", 1000)
    assert [m.message_id for m in stored] == ids


async def test_cv1_batch_failing_in_postgres_rolls_back(
    history: ConversationHistoryUnit, pg_pool: asyncpg.Pool
) -> None:
    """CV1: a batch Postgres refuses midway (a duplicate id) leaves no row behind."""
    ids = await history.save_messages_batch([message("c", i) for i in range(300)])
    await pg_pool.execute(
        f"SELECT setval(pg_get_serial_sequence('{history.table}', 'id'), $1, false)", ids[-1]
    )
    with pytest.raises(ConversationStoreError, match="save_messages_batch"):
        await history.save_messages_batch([message("d", i) for i in range(300)])
    assert await history.get_conversation_history("d", 10) == []


async def test_cv2_history_is_the_latest_page_in_order_ties_by_id(
    history: ConversationHistoryUnit,
) -> None:
    """CV2: the latest ``limit`` messages, oldest first; equal timestamps ordered by id."""
    ids = await history.save_messages_batch(
        [message("c", 0), message("c", 5), message("c", 5), message("c", 9), message("x", 99)]
    )
    page = await history.get_conversation_history("c", 3)
    assert [m.message_id for m in page] == [ids[1], ids[2], ids[3]]


async def test_cv3_search_is_full_text_with_web_syntax_newest_first(
    history: ConversationHistoryUnit,
) -> None:
    """CV3: stemming, phrases, or, -word; newest first by default."""
    await history.save_messages_batch(
        [
            message("a", 0, "I want a refund please", "Refunds take 3 days"),
            message("a", 1, "where is my parcel", "The parcel ships today"),
            message("b", 2, "refund for the parcel", "Done"),
            message("b", 3, "shipping costs", "They are free"),
        ]
    )

    async def texts(query: str) -> list[str]:
        return [m.user_input for m in await history.search_conversations(query, 10)]

    assert await texts("refunding") == ["refund for the parcel", "I want a refund please"]
    assert await texts('"parcel ships"') == ["where is my parcel"]
    assert await texts("refund -parcel") == ["I want a refund please"]
    assert await texts("costs or refund") == [
        "shipping costs",
        "refund for the parcel",
        "I want a refund please",
    ]
    assert await texts("the") == []


async def test_cv3_relevance_order_ranks_the_candidates(history: ConversationHistoryUnit) -> None:
    """CV3: order="relevance" puts the message with more matches first."""
    await history.save_messages_batch(
        [
            message("a", 0, "refund refund refund", "refund issued"),
            message("a", 1, "a refund maybe", "ok"),
        ]
    )
    recent = await history.search_conversations("refund", 10)
    relevant = await history.search_conversations("refund", 10, order="relevance")
    assert [m.user_input for m in recent] == ["a refund maybe", "refund refund refund"]
    assert [m.user_input for m in relevant] == ["refund refund refund", "a refund maybe"]


@pytest.mark.parametrize("order", ["recency", "relevance"])
async def test_cv3_search_beyond_the_recent_window_finds_the_same_messages(
    history: ConversationHistoryUnit, order: str
) -> None:
    """CV3: a term rare in the newest messages is found in older ones (the second step), and
    results do not depend on the window's size."""
    texts = ["common rare"] + ["common"] * 30 + ["common rare"] + ["common"] * 5
    await history.save_messages_batch([message("c", i, text) for i, text in enumerate(texts)])
    expected = {}
    for term in ("rare", "common"):
        expected[term] = [
            m.message_id
            for m in await history.search_conversations(term, 5, order=order)  # type: ignore[arg-type]
        ]
    assert len(expected["rare"]) == 2
    history.recent_window = 3
    for term in ("rare", "common"):
        found = await history.search_conversations(term, 5, order=order)  # type: ignore[arg-type]
        assert [m.message_id for m in found] == expected[term]


async def test_cv3_search_plans_use_an_index(
    history: ConversationHistoryUnit, pg_pool: asyncpg.Pool
) -> None:
    """CV3: with scans of the table disabled the search and history queries still run on
    an index (the planner never needs a sequential scan)."""
    await history.save_messages_batch([message(f"c{i % 50}", i) for i in range(2000)])
    async with pg_pool.acquire() as conn:
        await conn.execute("ANALYZE " + history.table)
        await conn.execute("SET enable_seqscan = off")
        search = history._search
        for sql, args in (
            (search.window, ("hello", 20, 500)),
            (search.everything, ("hello", 20)),
            (search.window_ranked, ("hello", 1000, 500, 20)),
            (search.everything_ranked, ("hello", 1000, 20)),
            (history._history_sql, ("c1", 50)),
        ):
            plan = "\n".join(r[0] for r in await conn.fetch("EXPLAIN " + sql, *args))
            assert "Seq Scan" not in plan, plan


async def test_cv4_query_filters_combine_with_and(history: ConversationHistoryUnit) -> None:
    """CV4: conversation, half-open date range, text and min response time all apply."""
    await history.save_messages_batch(
        [
            message("a", 0, "refund", rt=50),
            message("a", 10, "refund", rt=500),
            message("a", 20, "refund", rt=500),
            message("b", 10, "refund", rt=500),
            message("a", 10, "other", rt=500),
        ]
    )
    query = (
        ConversationQuery()
        .conversation_id("a")
        .date_range(T0 + timedelta(minutes=5), T0 + timedelta(minutes=20))
        .contains_text("refund")
        .min_response_time(100)
        .limit(10)
    )
    found = await history.query_conversations(query)
    assert [(m.conversation_id, m.timestamp, m.user_input) for m in found] == [
        ("a", T0 + timedelta(minutes=10), "refund")
    ]
    everything = await history.query_conversations(ConversationQuery().limit(10**9))
    assert len(everything) == 5


async def test_cv4_query_values_are_bound_never_spliced(history: ConversationHistoryUnit) -> None:
    """CV4: a hostile conversation id is a value, not SQL: it matches nothing, drops nothing."""
    await history.save_message(message("a", 0))
    evil = "a' OR '1'='1"
    assert await history.query_conversations(ConversationQuery().conversation_id(evil)) == []
    assert len(await history.get_conversation_history("a")) == 1


async def test_absurd_inputs_are_refused_with_typed_errors(
    history: ConversationHistoryUnit,
) -> None:
    """A huge id or query, a zero limit, a NUL or non-JSON metadata: InvalidConversationError."""
    with pytest.raises(InvalidConversationError, match="conversation_id"):
        await history.get_conversation_history("x" * 10_000)
    with pytest.raises(InvalidConversationError, match="search query"):
        await history.search_conversations("q" * 5000)
    with pytest.raises(InvalidConversationError, match="limit"):
        await history.get_conversation_history("c", 0)
    with pytest.raises(InvalidConversationError, match="NUL"):
        await history.save_message(message("c", 0, text="a\x00b"))
    with pytest.raises(InvalidConversationError, match="JSON"):
        await history.save_message(message("c", 0, metadata={"x": object()}))
    small = ConversationHistoryUnit(history.pool, history.table_name, max_field_bytes=10)
    with pytest.raises(InvalidConversationError, match="MAX_FIELD_BYTES"):
        await small.save_message(message("c", 0, text="y" * 100))
    assert len(await history.get_conversation_history("c", MAX_LIMIT + 5)) == 0
    with pytest.raises(InvalidConversationError, match="table_name"):
        ConversationHistoryUnit(history.pool, 'x"; DROP TABLE y; --')


async def test_initialize_is_idempotent_and_safe_to_race(
    pg_pool: asyncpg.Pool, schema: str
) -> None:
    """Concurrent initialize() calls on a new table all succeed and leave one table."""
    units = [ConversationHistoryUnit(pg_pool, f"{schema}.t") for _ in range(4)]
    await asyncio.gather(*(unit.initialize() for unit in units))
    await units[0].initialize()
    assert await units[0].save_message(message("c", 0)) >= 1


def test_migration_file_is_the_rendered_ddl_of_the_default_table() -> None:
    """The 0300 migration equals the DDL initialize() runs for the default table."""
    migration = Path(__file__).parents[3] / "app/database/migrations/0300_conversations.sql"
    rendered = render_ddl(quoted_table("conversations"), "conversations")
    assert migration.read_text().split("\n\n", 1)[1] == rendered
