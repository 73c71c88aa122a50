"""Projections (read models, D9): a runner that applies each event's effects and moves the
projection's checkpoint in ONE transaction, so every event takes effect exactly once.

The checkpoint moves by compare-and-set (``WHERE position = <the one read>``): a rebuild (or
a second runner) in between makes the transaction roll back and the runner re-read where to
go on. An event that keeps failing after ``max_attempts`` goes to ``projection_dead_letters``
with its error, and the projection moves past it (in the same transaction). As with the
relay, one runner per projection is active across processes (a session advisory lock).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol
from uuid import UUID

import asyncpg
import structlog

from app.entities.event_log import read_after
from app.entities.records import StoredEvent
from app.entities.relay import INITIAL_BACKOFF_S, SingletonConsumer, ensure_checkpoint
from app.entities.sql import Connection

__all__ = ["AgentGoalStats", "Projection", "ProjectionRunner", "ProjectionStatus", "rebuild"]

log = structlog.get_logger(__name__)

MAX_BACKOFF_S = 5.0  # between tries after a database error


class Projection(Protocol):
    """A read model: ``apply`` writes an event's effects on ``conn`` (inside the runner's
    transaction); ``tables`` are emptied by a rebuild."""

    name: str
    tables: Sequence[str]

    async def apply(self, conn: Connection, event: StoredEvent) -> None: ...


class _CheckpointMoved(Exception):
    """Someone else moved the checkpoint (a rebuild): roll back and re-read."""


@dataclass(frozen=True)
class ProjectionStatus:
    name: str
    active: bool
    checkpoint: int | None
    applied: int
    dead_letters: int
    last_error: str | None

    def as_json(self) -> dict[str, object]:
        return {
            "active": self.active,
            "checkpoint": self.checkpoint,
            "applied": self.applied,
            "dead_letters": self.dead_letters,
            "last_error": self.last_error,
        }


class ProjectionRunner(SingletonConsumer):
    """Keeps one projection up to date; ``start()``/``stop()`` run it as a task."""

    _kind = "projection"

    def __init__(
        self,
        pool: asyncpg.Pool,
        projection: Projection,
        *,
        batch_size: int = 100,
        poll_interval_s: float = 0.5,
        max_attempts: int = 3,
        standby_retry_s: float = 1.0,
    ) -> None:
        super().__init__(
            pool,
            f"projection:{projection.name}",
            standby_retry_s=standby_retry_s,
            max_backoff_s=MAX_BACKOFF_S,
        )
        self.projection = projection
        self._batch = batch_size
        self._poll_s = poll_interval_s
        self._max_attempts = max_attempts
        self._checkpoint: int | None = None
        self._applied = 0
        self._dead = 0

    def status(self) -> ProjectionStatus:
        return ProjectionStatus(
            self.projection.name,
            self._active,
            self._checkpoint,
            self._applied,
            self._dead,
            self._last_error,
        )

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def _pump(self, conn: Connection) -> None:
        await ensure_checkpoint(conn, self.name)
        while True:
            self._wake.clear()
            position = int(
                await conn.fetchval(
                    "SELECT position FROM event_checkpoints WHERE name = $1", self.name
                )
            )
            self._checkpoint = position
            events = await read_after(conn, position, self._batch)
            if not events:
                await self._sleep(self._poll_s)
                continue
            for event in events:
                try:
                    await self._apply_with_retries(conn, event, position)
                except _CheckpointMoved:
                    log.info("entities.projection_checkpoint_moved", name=self.name)
                    break
                position = event.global_position
                self._checkpoint = position

    async def _apply_with_retries(self, conn: Connection, event: StoredEvent, at: int) -> None:
        backoff = INITIAL_BACKOFF_S
        for attempt in range(1, self._max_attempts + 1):
            try:
                async with conn.transaction():
                    await self.projection.apply(conn, event)
                    await self._advance(conn, at, event.global_position)
            except _CheckpointMoved:
                raise
            except Exception as exc:
                self._last_error = f"{type(exc).__name__}: {exc}"
                log.warning(
                    "entities.projection_failed",
                    name=self.name,
                    position=event.global_position,
                    attempt=attempt,
                    error=self._last_error,
                )
                if attempt < self._max_attempts:
                    await asyncio.sleep(backoff)
                    backoff *= 2
                    continue
                async with conn.transaction():
                    await conn.execute(
                        "INSERT INTO projection_dead_letters (projection, global_position, "
                        "event_id, event_type, error, attempts) VALUES ($1, $2, $3, $4, $5, $6) "
                        "ON CONFLICT (projection, global_position) DO NOTHING",
                        self.projection.name,
                        event.global_position,
                        event.event_id,
                        event.event_type,
                        self._last_error,
                        attempt,
                    )
                    await self._advance(conn, at, event.global_position)
                self._dead += 1
                return
            else:
                self._applied += 1
                self._last_error = None
                return

    async def _advance(self, conn: Connection, at: int, to: int) -> None:
        status = await conn.execute(
            "UPDATE event_checkpoints SET position = $3, updated_at = now() "
            "WHERE name = $1 AND position = $2",
            self.name,
            at,
            to,
        )
        if status != "UPDATE 1":
            raise _CheckpointMoved


async def rebuild(pool: asyncpg.Pool, projection: Projection) -> None:
    """Empty the projection's tables and dead letters and move its checkpoint to 0, in one
    transaction; the active runner then replays every event (a rebuilt projection equals the
    live one, D9)."""
    name = f"projection:{projection.name}"
    async with pool.acquire() as conn, conn.transaction():
        await ensure_checkpoint(conn, name)
        # Waits for the runner's transaction in flight; its next compare-and-set then fails.
        await conn.execute("SELECT 1 FROM event_checkpoints WHERE name = $1 FOR UPDATE", name)
        for table in projection.tables:
            await conn.execute(f'TRUNCATE "{table}"')
        await conn.execute(
            "DELETE FROM projection_dead_letters WHERE projection = $1", projection.name
        )
        await conn.execute(
            "UPDATE event_checkpoints SET position = 0, updated_at = now() WHERE name = $1", name
        )
    log.info("entities.projection_rebuild", name=projection.name)


class AgentGoalStats:
    """Per agent, the number of live goals in each status (``GET /api/agents/{id}/stats``)."""

    name: str = "agent_goal_stats"
    tables: Sequence[str] = ("agent_goal_stats",)

    async def apply(self, conn: Connection, event: StoredEvent) -> None:
        if event.entity_type != "goal":
            return
        state = event.payload["state"]
        agent, status = state["agent_id"], state["status"]
        if event.event_type == "goal_created":
            await self._add(conn, agent, status, 1)
        elif event.event_type == "goal_deleted":
            await self._add(conn, agent, status, -1)
        else:
            changes = event.payload.get("changes", {})
            if "status" not in changes and "agent_id" not in changes:
                return
            old_agent = changes.get("agent_id", [agent])[0]
            old_status = changes.get("status", [status])[0]
            await self._add(conn, old_agent, old_status, -1)
            await self._add(conn, agent, status, 1)

    @staticmethod
    async def _add(conn: Connection, agent: str, status: str, delta: int) -> None:
        await conn.execute(
            "INSERT INTO agent_goal_stats (agent_id, status, count) VALUES ($1, $2, $3) "
            "ON CONFLICT (agent_id, status) "
            "DO UPDATE SET count = agent_goal_stats.count + EXCLUDED.count",
            UUID(agent),
            status,
            delta,
        )

    @staticmethod
    async def read(conn: Connection | asyncpg.Pool, agent_id: UUID) -> dict[str, int]:
        rows = await conn.fetch(
            "SELECT status, count FROM agent_goal_stats WHERE agent_id = $1 AND count <> 0 "
            "ORDER BY status",
            agent_id,
        )
        return {row["status"]: int(row["count"]) for row in rows}
