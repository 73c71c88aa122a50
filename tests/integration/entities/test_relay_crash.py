"""D7: a relay killed (SIGKILL, mid-batch) and restarted loses nothing; duplicates are at
most the batch in flight, with the same event ids."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import asyncpg
import pytest

from app.entities import Create, EntityStore
from tests.integration.entities.support import eventually

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EVENTS = 1_500
BATCH = 50
ROOT = Path(__file__).resolve().parents[3]


def start_worker(dsn: str, out: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.integration.entities.relay_worker",
            dsn,
            str(out),
            str(BATCH),
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def delivered(out: Path) -> list[tuple[int, str]]:
    if not out.exists():
        return []
    lines = [line.split() for line in out.read_text().splitlines() if line.strip()]
    return [(int(position), event_id) for position, event_id in lines if event_id]


async def test_d7_relay_killed_mid_batch_loses_nothing(
    store: EntityStore, pool: asyncpg.Pool, database: str, tmp_path: Path
) -> None:
    """Kill the relay process three times while it publishes: after the last restart every
    event was delivered, none lost; each crash re-sends at most one batch."""
    for start in range(0, EVENTS, 100):
        await store.apply(
            [Create("document", {"title": f"d{n}"}) for n in range(start, start + 100)]
        )
    out = tmp_path / "delivered.txt"
    kills = 0
    for round_ in range(3):
        worker = start_worker(database, out)
        try:
            target = (round_ + 1) * EVENTS // 5
            await eventually(
                lambda t=target: len(delivered(out)) >= t, timeout_s=60, what="progress"
            )
        finally:
            os.kill(worker.pid, signal.SIGKILL)
            await asyncio.to_thread(worker.wait)
            kills += 1
    worker = start_worker(database, out)
    try:
        await eventually(
            lambda: {p for p, _ in delivered(out)} >= set(range(1, EVENTS + 1)),
            timeout_s=90,
            what="every event delivered after the restarts",
        )
    finally:
        worker.kill()
        await asyncio.to_thread(worker.wait)
    lines = delivered(out)
    ids = await pool.fetch("SELECT global_position, event_id FROM events")
    expected = {row["global_position"]: str(row["event_id"]) for row in ids}
    assert all(expected[position] == event_id for position, event_id in lines)
    duplicates = sum(count - 1 for count in Counter(p for p, _ in lines).values())
    assert duplicates <= kills * BATCH
    positions = [p for p, _ in lines]
    assert sorted(set(positions)) == list(range(1, EVENTS + 1))
