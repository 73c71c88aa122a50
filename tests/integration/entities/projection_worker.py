"""Projection runners in a process of their own, for the crash test (D9): the shipped goal
counts and ``EffectLog`` (one row per event applied) keep the test database's read models up
to date until the process is killed.

``python -m tests.integration.entities.projection_worker DSN BATCH_SIZE``
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from typing import Final

import asyncpg

from app.entities import StoredEvent
from app.entities.projections import AgentGoalStats, Projection, ProjectionRunner
from app.entities.sql import Connection

__all__ = ["APPLICATION_NAME", "EFFECTS_TABLE", "EffectLog", "projections"]

# How the test finds the worker's sessions in pg_stat_activity.
APPLICATION_NAME: Final = "projection_worker"
# No key on purpose: an event applied twice shows as two rows instead of failing the apply.
EFFECTS_TABLE: Final = (
    "CREATE TABLE projection_effects (global_position bigint NOT NULL, event_id uuid NOT NULL)"
)


class EffectLog:
    """Writes one row per event, then holds its transaction open for ``hold_s``: a kill then
    lands between an effect and its commit more often than not."""

    name = "effect_log"
    tables: Sequence[str] = ("projection_effects",)

    def __init__(self, hold_s: float = 0.0) -> None:
        self._hold_s = hold_s

    async def apply(self, conn: Connection, event: StoredEvent) -> None:
        await conn.execute(
            "INSERT INTO projection_effects (global_position, event_id) VALUES ($1, $2)",
            event.global_position,
            event.event_id,
        )
        if self._hold_s:
            await asyncio.sleep(self._hold_s)


def projections() -> list[Projection]:
    """What the worker runs: the shipped goal counts and a slow effect log."""
    return [AgentGoalStats(), EffectLog(hold_s=0.002)]


async def main(dsn: str, batch_size: int) -> None:
    pool = await asyncpg.create_pool(
        dsn, min_size=2, max_size=2, server_settings={"application_name": APPLICATION_NAME}
    )
    runners = [
        ProjectionRunner(
            pool, projection, batch_size=batch_size, poll_interval_s=0.05, standby_retry_s=0.05
        )
        for projection in projections()
    ]
    for runner in runners:
        await runner.start()
    await asyncio.Event().wait()  # until killed


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
