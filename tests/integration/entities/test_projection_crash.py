"""D9: projections killed (SIGKILL) while they apply a stream of events, and restarted, end
equal to a clean rebuild: each event took effect exactly once, because an event's effects and
the checkpoint commit together."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import IO
from uuid import UUID, uuid4

import asyncpg
import pytest

from app.entities import Change, Create, Delete, EntityStore, Update
from app.entities.projections import AgentGoalStats, ProjectionRunner, rebuild
from tests.integration.entities.projection_worker import APPLICATION_NAME, EFFECTS_TABLE
from tests.integration.entities.support import eventually

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EVENTS = 1_500
BATCH = 100
KILLS = 8
ROOT = Path(__file__).resolve().parents[3]
STATUSES = ("pending", "active", "completed", "failed", "cancelled")
CHECKPOINTS = ("projection:agent_goal_stats", "projection:effect_log")


def goal_history(seed: int) -> list[list[Change]]:
    """``EVENTS`` changes in batches of ``BATCH``, each one event: agents, then goals created,
    moved through statuses and between agents, re-prioritised and deleted."""
    rng = random.Random(seed)
    agents = [uuid4() for _ in range(10)]
    live: dict[UUID, str] = {}  # goal -> status
    first: list[Change] = [
        Create("agent", {"name": f"a{n}", "agent_type": "reasoning"}, id=agent)
        for n, agent in enumerate(agents)
    ]
    for n in range(BATCH - len(agents)):
        goal = uuid4()
        live[goal] = "pending"
        first.append(
            Create("goal", {"agent_id": rng.choice(agents), "description": f"g{n}"}, id=goal)
        )
    batches = [first]
    priority = 0
    while sum(map(len, batches)) < EVENTS:
        batch: list[Change] = []
        touched: set[UUID] = set()  # one change per goal per batch keeps the batch simple
        while len(batch) < BATCH:
            roll = rng.random()
            candidates = sorted(set(live) - touched)
            if roll < 0.2 or not candidates:
                goal = uuid4()
                live[goal] = "pending"
                fields = {"agent_id": rng.choice(agents), "description": "g"}
                batch.append(Create("goal", fields, id=goal))
                touched.add(goal)
                continue
            goal = rng.choice(candidates)
            touched.add(goal)
            if roll < 0.5:
                status = rng.choice([s for s in STATUSES if s != live[goal]])
                live[goal] = status
                batch.append(Update("goal", goal, {"status": status}))
            elif roll < 0.7:
                # Another agent (the same one by chance still changes the status).
                status = rng.choice([s for s in STATUSES if s != live[goal]])
                live[goal] = status
                fields = {"agent_id": rng.choice(agents), "status": status}
                batch.append(Update("goal", goal, fields))
            elif roll < 0.85:
                priority += 1
                batch.append(Update("goal", goal, {"priority": priority}))  # counts unchanged
            else:
                del live[goal]
                batch.append(Delete("goal", goal))
        batches.append(batch)
    return batches


def start_worker(dsn: str, log: IO[bytes]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.integration.entities.projection_worker", dsn, str(BATCH)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )


async def checkpoints(pool: asyncpg.Pool) -> dict[str, int]:
    rows = await pool.fetch(
        "SELECT name, position FROM event_checkpoints WHERE name = any($1::text[])",
        list(CHECKPOINTS),
    )
    return {name: 0 for name in CHECKPOINTS} | {r["name"]: int(r["position"]) for r in rows}


async def open_transactions(pool: asyncpg.Pool) -> int:
    """The worker's sessions inside a transaction right now."""
    value = await pool.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 "
        "AND xact_start IS NOT NULL",
        APPLICATION_NAME,
    )
    return int(value)


async def goal_counts(pool: asyncpg.Pool) -> list[tuple[UUID, str, int]]:
    rows = await pool.fetch(
        "SELECT agent_id, status, count FROM agent_goal_stats WHERE count <> 0 ORDER BY 1, 2"
    )
    return [(r["agent_id"], r["status"], r["count"]) for r in rows]


async def test_d9_projections_killed_mid_stream_equal_a_clean_rebuild(
    store: EntityStore, pool: asyncpg.Pool, database: str, tmp_path: Path
) -> None:
    """Kill the projection process four times while it applies 1,500 events, restart it each
    time: every event took effect exactly once, the goal counts equal a rebuild from zero,
    and both checkpoints reach the head."""
    await pool.execute(EFFECTS_TABLE)
    for batch in goal_history(seed=9):
        await store.apply(batch)
    head = int(await pool.fetchval("SELECT max(global_position) FROM events"))
    assert head == EVENTS
    caught_in_transaction = 0
    with (tmp_path / "worker.log").open("ab") as log:

        async def progressed(worker: subprocess.Popen[bytes], target: int) -> bool:
            assert worker.poll() is None, (tmp_path / "worker.log").read_text()
            return min((await checkpoints(pool)).values()) >= target

        for kill in range(1, KILLS + 1):
            worker = start_worker(database, log)
            try:
                target = kill * EVENTS // (KILLS + 1)
                await eventually(
                    lambda w=worker, t=target: progressed(w, t), timeout_s=60, what="progress"
                )
                caught_in_transaction += await open_transactions(pool)
            finally:
                os.kill(worker.pid, signal.SIGKILL)
                await asyncio.to_thread(worker.wait)
        worker = start_worker(database, log)
        try:
            await eventually(
                lambda: progressed(worker, head), timeout_s=60, what="catching up after restarts"
            )
        finally:
            os.kill(worker.pid, signal.SIGKILL)
            await asyncio.to_thread(worker.wait)
    assert caught_in_transaction > 0, "no kill landed inside a projection's transaction"
    assert await checkpoints(pool) == dict.fromkeys(CHECKPOINTS, head)
    assert await pool.fetchval("SELECT count(*) FROM projection_dead_letters") == 0
    effects = await pool.fetch("SELECT global_position, event_id FROM projection_effects")
    assert Counter(r["global_position"] for r in effects) == Counter(range(1, head + 1))
    event_ids = await pool.fetch("SELECT global_position, event_id FROM events")
    assert {(r["global_position"], r["event_id"]) for r in effects} == {
        (r["global_position"], r["event_id"]) for r in event_ids
    }

    survived = await goal_counts(pool)
    live = await pool.fetch(
        "SELECT agent_id, status, count(*) AS n FROM goals WHERE deleted_at IS NULL "
        "GROUP BY 1, 2 ORDER BY 1, 2"
    )
    assert survived == [(r["agent_id"], r["status"], r["n"]) for r in live]
    await rebuild(pool, AgentGoalStats())
    runner = ProjectionRunner(pool, AgentGoalStats(), poll_interval_s=0.05)
    await runner.start()
    try:
        await eventually(
            lambda: runner.status().checkpoint == head, timeout_s=30, what="the clean rebuild"
        )
    finally:
        await runner.stop()
    assert await goal_counts(pool) == survived
