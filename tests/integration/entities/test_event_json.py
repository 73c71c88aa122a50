"""The events API's JSON, made by Postgres, is the same object the relay sends (D8)."""

from __future__ import annotations

import json

import asyncpg
import pytest

from app.entities import ChangeContext, EntityStore
from app.entities.event_log import EventQuery, get_event_json, list_events, list_events_json

pytestmark = pytest.mark.integration


async def test_listing_json_equals_the_python_event_json(
    store: EntityStore, pool: asyncpg.Pool
) -> None:
    """Each event of a page decodes to exactly StoredEvent.as_json() (timestamps, nested
    payloads, metadata, unicode), and the next cursor is the same."""
    context = ChangeContext(request_id="r", caller="c", correlation_id="ü-1")
    agent = await store.create(
        "agent",
        {"name": "äda 🚀", "agent_type": "reasoning", "configuration": {"n": [1, 2.5, None]}},
        context=context,
    )
    await store.update("agent", agent.entity.id, {"status": "inactive"})  # type: ignore[attr-defined]
    await store.create("document", {"title": "t", "metadata": {"q": '"quoted"\n'}})
    for query in (EventQuery(limit=2), EventQuery(order="desc", limit=5)):
        page = await list_events(pool, query)
        body = json.loads(await list_events_json(pool, query))
        assert body["items"] == [event.as_json() for event in page.items]
        assert body["next_cursor"] == page.next_cursor
    one = page.items[0]
    assert json.loads(await get_event_json(pool, one.event_id)) == one.as_json()
