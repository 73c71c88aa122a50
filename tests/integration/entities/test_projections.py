"""Projections (D9): effects and checkpoint in one transaction, retries, dead letters, a
rebuild from position 0 that equals the live read model."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

import asyncpg
import pytest

from app.entities import EntityStore, StoredEvent
from app.entities.projections import AgentGoalStats, ProjectionRunner, rebuild
from app.entities.sql import Connection
from tests.integration.entities.support import eventually

pytestmark = pytest.mark.integration


async def stats_table(pool: asyncpg.Pool) -> list[tuple[UUID, str, int]]:
    rows = await pool.fetch(
        "SELECT agent_id, status, count FROM agent_goal_stats WHERE count <> 0 ORDER BY 1, 2"
    )
    return [(r["agent_id"], r["status"], r["count"]) for r in rows]


async def checkpoint_at(pool: asyncpg.Pool, name: str, position: int) -> bool:
    value = await pool.fetchval("SELECT position FROM event_checkpoints WHERE name = $1", name)
    return bool(value == position)


async def head(pool: asyncpg.Pool) -> int:
    return int(await pool.fetchval("SELECT max(global_position) FROM events"))


async def make_history(store: EntityStore) -> tuple[UUID, UUID]:
    """Two agents; goals created, moved through statuses, moved between agents, deleted."""
    first = (await store.create("agent", {"name": "a", "agent_type": "reasoning"})).entity
    second = (await store.create("agent", {"name": "b", "agent_type": "execution"})).entity
    a, b = first.id, second.id  # type: ignore[attr-defined]
    goals = [
        (await store.create("goal", {"agent_id": a, "description": f"g{n}"})).entity.id  # type: ignore[attr-defined]
        for n in range(5)
    ]
    await store.update("goal", goals[0], {"status": "active"})
    await store.update("goal", goals[1], {"status": "completed"})
    await store.update("goal", goals[2], {"agent_id": b, "status": "failed"})
    await store.update("goal", goals[3], {"priority": 9})  # no effect on the counts
    await store.delete("goal", goals[4])
    return a, b


async def test_d9_goal_counts_follow_the_events(store: EntityStore, pool: asyncpg.Pool) -> None:
    """The per-agent counts by status match the goals' current state."""
    a, b = await make_history(store)
    runner = ProjectionRunner(pool, AgentGoalStats(), poll_interval_s=0.05)
    await runner.start()
    try:
        top = await head(pool)
        await eventually(
            lambda: checkpoint_at(pool, runner.name, top), what="the projection catching up"
        )
    finally:
        await runner.stop()
    assert await AgentGoalStats.read(pool, a) == {"active": 1, "completed": 1, "pending": 1}
    assert await AgentGoalStats.read(pool, b) == {"failed": 1}
    live = await pool.fetch(
        "SELECT agent_id, status, count(*) AS n FROM goals WHERE deleted_at IS NULL "
        "GROUP BY 1, 2 ORDER BY 1, 2"
    )
    assert await stats_table(pool) == [(r["agent_id"], r["status"], r["n"]) for r in live]


async def test_d9_rebuild_equals_the_live_projection(
    store: EntityStore, pool: asyncpg.Pool
) -> None:
    """D9: rebuilt from position 0, the read model equals the one kept live."""
    await make_history(store)
    runner = ProjectionRunner(pool, AgentGoalStats(), poll_interval_s=0.05)
    await runner.start()
    try:
        top = await head(pool)
        await eventually(lambda: checkpoint_at(pool, runner.name, top), what="catching up")
        live = await stats_table(pool)
        await rebuild(pool, runner.projection)
        runner.wake()
        await eventually(lambda: checkpoint_at(pool, runner.name, top), what="the rebuild")
    finally:
        await runner.stop()
    assert await stats_table(pool) == live


class Exploding:
    """A projection that fails on one event type, counting every other event it applies."""

    name = "exploding"
    tables: Sequence[str] = ("exploding_counts",)

    async def apply(self, conn: Connection, event: StoredEvent) -> None:
        if event.event_type == "document_deleted":
            raise RuntimeError("cannot project deletes")
        await conn.execute("UPDATE exploding_counts SET n = n + 1")


async def test_d9_a_failing_event_is_dead_lettered_and_skipped(
    store: EntityStore, pool: asyncpg.Pool
) -> None:
    """After its retries, an event that keeps failing goes to the dead-letter table with its
    error; the projection goes on, and each other event took effect exactly once."""
    await pool.execute("CREATE TABLE exploding_counts (n integer NOT NULL)")
    await pool.execute("INSERT INTO exploding_counts VALUES (0)")
    doc = (await store.create("document", {"title": "t"})).entity
    await store.delete("document", doc.id)  # type: ignore[attr-defined]
    await store.create("document", {"title": "u"})
    runner = ProjectionRunner(pool, Exploding(), poll_interval_s=0.05, max_attempts=3)
    await runner.start()
    try:
        await eventually(lambda: checkpoint_at(pool, runner.name, 3), what="passing the failure")
    finally:
        await runner.stop()
    assert await pool.fetchval("SELECT n FROM exploding_counts") == 2
    dead = await pool.fetch("SELECT * FROM projection_dead_letters")
    assert [(d["global_position"], d["attempts"]) for d in dead] == [(2, 3)]
    assert "cannot project deletes" in dead[0]["error"]
    assert runner.status().dead_letters == 1
