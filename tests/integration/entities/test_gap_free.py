"""D4: a reader tailing ``global_position > last_seen`` never skips an event that commits
later, with 8 writers pausing between their insert and their commit."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime

import asyncpg
import pytest

from app.entities import CATALOG, Create, EntityStore
from app.entities import sql as entity_sql
from app.entities.event_log import EventQuery, list_events
from app.events.model import new_event_id

pytestmark = pytest.mark.integration

WRITERS = 8
WRITES_EACH = 6
TRIALS = 20


def create_args(n: int) -> list[object]:
    """Arguments of the single-change create statement for an agent: id, event id, type,
    payload, metadata, timestamp, then name, agent_type, status, capabilities, configuration."""
    fields = [f"w{n}", "reasoning", "active", "[]", "{}"]
    assert len(fields) == len(CATALOG.get("agent").columns)
    now = datetime.now(UTC)
    return [new_event_id(), new_event_id(), "agent_created", '{"state": {}}', "{}", now, *fields]


async def trial(pool: asyncpg.Pool, statement: str, rng: random.Random) -> tuple[int, int]:
    """Writers run ``statement`` in explicit transactions and pause before COMMIT; a reader
    tails. Returns (events committed, events the tailing reader saw)."""
    seen: set[int] = set()
    done = asyncio.Event()

    async def writer(w: int) -> None:
        async with pool.acquire() as conn:
            for i in range(WRITES_EACH):
                async with conn.transaction():
                    await conn.fetchval(statement, *create_args(w * 100 + i))
                    await asyncio.sleep(rng.uniform(0, 0.004))  # insert done, commit pending

    async def reader() -> None:
        last = await pool.fetchval("SELECT coalesce(max(global_position), 0) FROM events")
        async with pool.acquire() as conn:
            while True:
                finished = done.is_set()
                page = await list_events(conn, EventQuery(after=last, limit=500))
                for event in page.items:
                    seen.add(event.global_position)
                    last = event.global_position
                if finished and not page.items:
                    return
                await asyncio.sleep(0)

    start = await pool.fetchval("SELECT coalesce(max(global_position), 0) FROM events")
    tail = asyncio.create_task(reader())
    await asyncio.gather(*(writer(w) for w in range(WRITERS)))
    done.set()
    await tail
    committed = await pool.fetchval("SELECT count(*) FROM events WHERE global_position > $1", start)
    return committed, len(seen)


async def run_trials(pool: asyncpg.Pool, statement: str, trials: int) -> list[int]:
    """Missed events per trial."""
    rng = random.Random(4)
    missed = []
    for _ in range(trials):
        committed, seen = await trial(pool, statement, rng)
        missed.append(committed - seen)
    return missed


async def test_d4_no_event_is_skipped_by_a_tailing_reader(pool: asyncpg.Pool) -> None:
    """D4: 8 writers pausing before commit, 20 trials: the reader misses nothing."""
    statement = entity_sql.create_sql(CATALOG.get("agent"))
    assert await run_trials(pool, statement, TRIALS) == [0] * TRIALS


async def test_without_the_lock_the_reader_does_miss_events(pool: asyncpg.Pool) -> None:
    """The same writers without the advisory lock lose events: the test above can fail."""
    statement = entity_sql.create_sql(CATALOG.get("agent")).replace(
        f"pg_advisory_xact_lock({entity_sql.EVENTS_LOCK_KEY})", "1"
    )
    assert "pg_advisory_xact_lock" not in statement
    missed = await run_trials(pool, statement, 5)
    assert sum(missed) > 0


async def test_d4_with_batches_and_single_changes_mixed(
    store: EntityStore, pool: asyncpg.Pool
) -> None:
    """D4 through the store's own paths: single creates and batches of 20 at once."""
    seen: list[int] = []
    done = asyncio.Event()

    async def reader() -> None:
        last = 0
        while True:
            finished = done.is_set()
            page = await list_events(pool, EventQuery(after=last, limit=500))
            seen.extend(e.global_position for e in page.items)
            last = page.items[-1].global_position if page.items else last
            if finished and not page.items:
                return

    def batch(n: int) -> list[Create]:
        return [Create("document", {"title": f"b{n}.{i}"}) for i in range(20)]

    tail = asyncio.create_task(reader())
    await asyncio.gather(
        *(store.create("document", {"title": f"s{n}"}) for n in range(40)),
        *(store.apply(batch(n)) for n in range(8)),
    )
    done.set()
    await tail
    total = await pool.fetchval("SELECT count(*) FROM events")
    assert total == 40 + 8 * 20
    assert sorted(seen) == seen
    assert len(seen) == total
