"""D10: no listing shape scans a whole table: every event and entity listing is served by an
index (checked with EXPLAIN on tables large enough for the planner to care)."""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

import asyncpg
import pytest

from app.entities import CATALOG, sql
from app.entities.cursor import encode_cursor
from app.entities.event_log import EventQuery, listing_sql

pytestmark = pytest.mark.integration

EVENTS = 200_000
AGENTS = 20_000

FILL = """
INSERT INTO events (global_position, event_id, event_type, entity_type, entity_id,
                    entity_version, payload, metadata, created_at)
SELECT nextval('events_global_position_seq'), gen_random_uuid(),
       (ARRAY['agent_created', 'goal_completed', 'plan_updated', 'task_started',
              'document_created'])[1 + (g / 10) % 5],
       (ARRAY['agent', 'goal', 'plan', 'task', 'document'])[1 + (g / 10) % 5],
       ('00000000-0000-4000-8000-' || lpad(to_hex(g / 10), 12, '0'))::uuid,
       1 + g % 10, '{}', '{}', now()
FROM generate_series(1, $1::bigint) AS g;
"""
FILL_ENTITIES = """
INSERT INTO agents (id, version, created_at, updated_at, name, agent_type, status,
                    capabilities, configuration)
SELECT gen_random_uuid(), 1, now() - g * interval '1 ms', now(), 'a' || g, 'reasoning',
       'active', '[]', '{}'
FROM generate_series(1, $1::bigint) AS g;
INSERT INTO goals (id, version, created_at, updated_at, agent_id, description, priority, status)
SELECT gen_random_uuid(), 1, a.created_at, now(), a.id, 'g', 0, 'pending'
FROM agents a, generate_series(1, 3);
ANALYZE;
"""


def scans(plan: Any) -> list[str]:
    """Every node type of an EXPLAIN (FORMAT JSON) plan, and the relations they scan."""
    found = [f"{plan['Node Type']}:{plan.get('Relation Name', '')}"]
    for child in plan.get("Plans", []):
        found += scans(child)
    return found


async def plan_of(pool: asyncpg.Pool, query: str, *args: Any) -> list[str]:
    raw = await pool.fetchval(f"EXPLAIN (FORMAT JSON) {query}", *args)
    return scans(json.loads(raw)[0]["Plan"])


@pytest.fixture
async def filled(pool: asyncpg.Pool) -> asyncpg.Pool:
    """The test database with 200k events and 20k agents with 3 goals each, analysed."""
    await pool.execute(FILL.replace("$1::bigint", str(EVENTS)))
    await pool.execute(FILL_ENTITIES.replace("$1::bigint", str(AGENTS)))
    return pool


def event_queries() -> dict[str, EventQuery]:
    entity = UUID("00000000-0000-4000-8000-000000000123")
    cursor_asc = encode_cursor(EventQuery().kind(), [150_000])
    cursor_desc = encode_cursor(EventQuery(order="desc").kind(), [150_000])
    return {
        "first page": EventQuery(),
        "after": EventQuery(after=100_000),
        "before, newest first": EventQuery(before=100_000, order="desc"),
        "after and before": EventQuery(after=100_000, before=100_500),
        "cursor": EventQuery(cursor=cursor_asc),
        "cursor, newest first": EventQuery(cursor=cursor_desc, order="desc"),
        "event_type": EventQuery(event_type="task_started"),
        "event_type after": EventQuery(event_type="task_started", after=150_000),
        "event_type newest first": EventQuery(event_type="task_started", order="desc"),
        "entity_type": EventQuery(entity_type="goal"),
        "entity_type after": EventQuery(entity_type="goal", after=150_000),
        "entity": EventQuery(entity_type="task", entity_id=entity),
        "entity after": EventQuery(entity_type="task", entity_id=entity, after=5),
        "bounded offset": EventQuery(offset=10_000),
    }


@pytest.mark.slow
async def test_d10_no_event_listing_shape_scans_the_table(filled: asyncpg.Pool) -> None:
    """D10: every events listing shape (filters, cursors, orders, offset) uses an index."""
    for name, query in event_queries().items():
        text, args = listing_sql(query)
        plan = await plan_of(filled, text, *args)
        assert not [node for node in plan if node.startswith("Seq Scan")], (name, plan)


@pytest.mark.slow
async def test_entity_listings_use_their_indexes(filled: asyncpg.Pool) -> None:
    """Entity pages (all, after a cursor, the children of one parent) use an index."""
    agent = await filled.fetchrow("SELECT id, created_at FROM agents ORDER BY created_at LIMIT 1")
    assert agent is not None
    agents, goals = CATALOG.get("agent"), CATALOG.get("goal")
    at, agent_id = agent["created_at"], agent["id"]
    shapes = {
        "agents first page": (sql.list_sql(agents, None, after_cursor=False), (51,)),
        "agents after a cursor": (
            sql.list_sql(agents, None, after_cursor=True),
            (at, agent_id, 51),
        ),
        "goals of one agent": (sql.list_sql(goals, "agent_id", after_cursor=False), (agent_id, 51)),
        "goals of one agent, after a cursor": (
            sql.list_sql(goals, "agent_id", after_cursor=True),
            (agent_id, at, agent_id, 51),
        ),
    }
    for name, (text, args) in shapes.items():
        plan = await plan_of(filled, text, *args)
        assert not [node for node in plan if node.startswith("Seq Scan")], (name, plan)
