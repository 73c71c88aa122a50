"""``Entities``: the store with the relays and projection runners around it, as one resource.

The lifecycle starts it after Postgres and the event bus (and Redis in distributed mode) and
stops it first. ``ping`` reports each consumer's checkpoint and lag; it fails (readiness
says why) while a relay cannot publish or a projection keeps failing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import asyncpg
import structlog

from app.entities.projections import AgentGoalStats, ProjectionRunner
from app.entities.relay import Relay, head_position
from app.entities.store import EntityStore
from app.errors import BackendNotConfiguredError, DataLayerError, EntitiesNotReadyError

__all__ = ["Entities"]

log = structlog.get_logger(__name__)

NO_POSTGRES = "the entities need Postgres, which this container was given as None"


class Entities:
    """The entity store, its relays (one per sink) and its projection runners."""

    def __init__(
        self,
        store: EntityStore | None,
        pool: asyncpg.Pool | None,
        relays: Sequence[Relay] = (),
        projections: Sequence[ProjectionRunner] = (),
    ) -> None:
        self._store = store
        self._pool = pool
        # Why the store cannot be used (no Postgres, or its tables are missing), if so.
        self._unavailable: DataLayerError | None = None
        self._probe = False
        self.relays = tuple(relays)
        self.projections = tuple(projections)
        self.goal_stats = AgentGoalStats()
        self._consumers: tuple[Relay | ProjectionRunner, ...] = (*self.relays, *self.projections)
        self._started = False

    @classmethod
    def without_postgres(cls) -> Entities:
        """For a container whose Postgres is overridden with ``None``: every use is a
        ``BackendNotConfiguredError`` (HTTP 503); readiness reports them disabled."""
        made = cls(None, None)
        made._unavailable = BackendNotConfiguredError(NO_POSTGRES)
        return made

    @classmethod
    def not_migrated(cls, reason: str, *, probe: bool = False) -> Entities:
        """The entity tables are missing or differ from their declarations (migrations off or
        not yet applied): every use is an ``EntitiesNotReadyError`` (HTTP 503) naming what is
        wrong, and readiness fails with it; for a ``probe`` (``check``, which never migrates)
        readiness reports the pending migration instead, as the database client does."""
        made = cls(None, None)
        made._unavailable = EntitiesNotReadyError(reason, {})
        made._probe = probe
        return made

    @property
    def store(self) -> EntityStore:
        if self._store is None:
            raise self._unavailable or BackendNotConfiguredError(NO_POSTGRES)
        return self._store

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise self._unavailable or BackendNotConfiguredError(NO_POSTGRES)
        return self._pool

    async def start(self) -> None:
        for consumer in self._consumers:
            self.store.add_commit_listener(consumer.wake)
            await consumer.start()
        self._started = True

    async def stop(self) -> None:
        if not self._started:
            return
        # Together: each relay may wait up to its publish timeout for its batch in flight,
        # and the lifecycle allows the entities one publish timeout (plus a margin) in all.
        await asyncio.gather(*(consumer.stop() for consumer in self._consumers))
        for consumer in self._consumers:
            self.store.remove_commit_listener(consumer.wake)
        self._started = False

    async def report(self) -> dict[str, Any]:
        """Per consumer: checkpoint and lag (events behind the newest), from the table, so
        a standby process reports the active one's progress."""
        async with self.pool.acquire() as conn:
            head = await head_position(conn)
            rows = await conn.fetch("SELECT name, position FROM event_checkpoints")
        stored = {row["name"]: int(row["position"]) for row in rows}
        details: dict[str, Any] = {"head": head}
        for relay in self.relays:
            at = stored.get(relay.name, 0)
            details[relay.name] = {**relay.status().as_json(), "checkpoint": at, "lag": head - at}
        for runner in self.projections:
            at = stored.get(runner.name, 0)
            details[runner.name] = {**runner.status().as_json(), "checkpoint": at, "lag": head - at}
        return details

    async def ping(self) -> dict[str, Any]:
        """The report; raises ``EntitiesNotReadyError`` (carrying it) when a consumer fails."""
        if isinstance(self._unavailable, EntitiesNotReadyError):
            if self._probe:
                return {"pending_migrations": str(self._unavailable)}
            raise self._unavailable
        if self._pool is None:
            return {"disabled": NO_POSTGRES}
        details = await self.report()
        failing = [
            f"{consumer.name}: {status.last_error} (lag {details[consumer.name]['lag']})"
            for consumer in self._consumers
            if (status := consumer.status()).last_error is not None
        ]
        if failing:
            raise EntitiesNotReadyError("; ".join(failing), details)
        return details
