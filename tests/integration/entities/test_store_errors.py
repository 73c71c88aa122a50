"""D12: driver errors at the store's boundary come out typed: a taken id is an
``EntityExistsError``, a lost connection a ``DatabaseConnectionError``, a closed pool a
``DatabaseNotConnectedError``; and whatever failed, nothing is half-written (D1)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import pytest

from app.entities import CATALOG, Change, Create, Delete, EntityStore, Update
from app.entities.event_log import (
    EventQuery,
    get_event,
    get_event_json,
    list_events,
    list_events_json,
)
from app.errors import DatabaseConnectionError, DatabaseNotConnectedError, EntityExistsError
from tests.integration.entities.support import eventually

pytestmark = pytest.mark.integration

# The advisory lock key a stalled write waits on (see ``stall_event_inserts``).
STALL_KEY = 4242
AGENT = {"name": "ada", "agent_type": "reasoning"}


async def row_counts(pool: asyncpg.Pool) -> dict[str, int]:
    """Rows in every entity table (tombstones included) and in the events table."""
    tables = [entity.table for entity in CATALOG] + ["events"]
    return {table: await pool.fetchval(f"SELECT count(*) FROM {table}") for table in tables}


async def new_agent(store: EntityStore, agent_id: UUID | None = None) -> UUID:
    written = await store.create("agent", AGENT, entity_id=agent_id)
    return written.entity.id  # type: ignore[attr-defined, no-any-return]


async def test_create_with_a_taken_id_is_entity_exists(
    store: EntityStore, pool: asyncpg.Pool
) -> None:
    """D12: a create naming the id of a live or a deleted entity is an EntityExistsError
    naming the type and the id; no row and no event is written."""
    agent_id = await new_agent(store)
    document = await store.create("document", {"title": "t"})
    document_id = document.entity.id  # type: ignore[attr-defined]
    await store.delete("document", document_id)
    before = await row_counts(pool)
    with pytest.raises(EntityExistsError, match=f"agent {agent_id} already exists") as caught:
        await store.create(
            "agent", {"name": "again", "agent_type": "execution"}, entity_id=agent_id
        )
    assert (caught.value.entity_type, caught.value.entity_id) == ("agent", agent_id)
    assert isinstance(caught.value.__cause__, asyncpg.UniqueViolationError)
    with pytest.raises(EntityExistsError, match=f"document {document_id} already exists"):
        await store.create("document", {"title": "reborn"}, entity_id=document_id)
    assert await row_counts(pool) == before
    assert (await store.get("agent", agent_id)).name == "ada"  # type: ignore[attr-defined]


async def test_apply_with_a_taken_id_is_entity_exists(
    store: EntityStore, pool: asyncpg.Pool
) -> None:
    """D12: a batch creating a taken id (in one statement, in the general transaction, or
    twice in the batch itself) is an EntityExistsError naming it; none of it is written."""
    agent_id = await new_agent(store)
    twice = uuid4()
    before = await row_counts(pool)
    batches: list[tuple[list[Change], str, UUID]] = [
        ([Create("agent", AGENT, id=agent_id)], "agent", agent_id),
        (
            [
                Create("document", {"title": "fine"}),
                Update("agent", agent_id, {"name": "renamed"}),
                Create("agent", AGENT, id=agent_id),
            ],
            "agent",
            agent_id,
        ),
        (
            [
                Create("agent", AGENT),
                Create("document", {"title": "first"}, id=twice),
                Create("document", {"title": "second"}, id=twice),
            ],
            "document",
            twice,
        ),
    ]
    for changes, entity_type, taken in batches:
        with pytest.raises(EntityExistsError, match=f"{entity_type} {taken} already") as caught:
            await store.apply(changes)
        assert (caught.value.entity_type, caught.value.entity_id) == (entity_type, taken)
        assert await row_counts(pool) == before
    assert (await store.get("agent", agent_id)).version == 1  # type: ignore[attr-defined]


class WriteStaller:
    """Stalls event inserts on an advisory lock held by a connection of its own, and ends the
    backend found waiting there (``pg_terminate_backend``): a connection lost mid-write."""

    WAITING = (
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND objid = $1 "
        "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    )

    def __init__(self, holder: asyncpg.Connection) -> None:
        self.holder = holder

    async def stall(self) -> None:
        """From now on every event insert waits for the lock held here."""
        await self.holder.execute("SELECT pg_advisory_lock($1)", STALL_KEY)
        await self.holder.execute(
            "CREATE FUNCTION stall() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            f"PERFORM pg_advisory_xact_lock({STALL_KEY}); RETURN NEW; END $$; "
            "CREATE TRIGGER stall BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION stall()"
        )

    async def terminate_stalled_writer(self) -> None:
        """Wait for a write to stall, then terminate its backend."""
        await eventually(
            lambda: self.holder.fetchval(self.WAITING, STALL_KEY), what="a write waiting"
        )
        pid = await self.holder.fetchval(self.WAITING, STALL_KEY)
        assert await self.holder.fetchval("SELECT pg_terminate_backend($1)", pid)


@pytest.fixture
async def staller(database: str) -> AsyncIterator[WriteStaller]:
    """A ``WriteStaller`` on the test's database; its lock is released after the test."""
    holder = await asyncpg.connect(database)
    yield WriteStaller(holder)
    await holder.close()


WRITES: dict[str, Callable[[EntityStore, UUID], Coroutine[Any, Any, object]]] = {
    "create": lambda store, _agent: store.create("document", {"title": "t"}),
    "update": lambda store, agent: store.update("agent", agent, {"name": "b"}),
    "delete": lambda store, agent: store.delete("agent", agent),
    "apply": lambda store, agent: store.apply(
        [
            Create("document", {"title": "t"}),
            Create("goal", {"agent_id": agent, "description": "g"}),
            Update("agent", agent, {"name": "b"}),
        ]
    ),
}


@pytest.mark.parametrize("write", sorted(WRITES))
async def test_a_connection_lost_mid_write_is_a_database_connection_error(
    store: EntityStore,
    pool: asyncpg.Pool,
    staller: WriteStaller,
    write: str,
) -> None:
    """D12: a write whose connection is killed while it runs (its event insert waiting)
    raises DatabaseConnectionError with the driver's error as the cause; nothing is written."""
    agent_id = await new_agent(store)
    before = await row_counts(pool)
    await staller.stall()
    task = asyncio.create_task(WRITES[write](store, agent_id))
    await staller.terminate_stalled_writer()
    with pytest.raises(DatabaseConnectionError, match="connection to Postgres failed") as caught:
        await task
    assert isinstance(caught.value.__cause__, asyncpg.PostgresError | asyncpg.InterfaceError)
    assert await row_counts(pool) == before
    assert (await store.get("agent", agent_id)).version == 1  # type: ignore[attr-defined]


async def test_a_closed_pool_is_database_not_connected(
    store: EntityStore, pool: asyncpg.Pool
) -> None:
    """D12: reads and writes on a store whose pool was closed raise DatabaseNotConnectedError."""
    agent_id = await new_agent(store)
    await pool.close()
    with pytest.raises(DatabaseNotConnectedError, match="pool is closed"):
        await store.get("agent", agent_id)
    with pytest.raises(DatabaseNotConnectedError, match="pool is closed"):
        await store.list("agent")
    with pytest.raises(DatabaseNotConnectedError, match="pool is closed"):
        await store.create("agent", AGENT)
    with pytest.raises(DatabaseNotConnectedError, match="pool is closed"):
        await store.apply([Create("document", {"title": "t"}), Delete("agent", agent_id)])


async def test_the_events_listing_on_a_closed_pool_is_database_not_connected(
    pool: asyncpg.Pool,
) -> None:
    """D12: the events listing and event reads raise DatabaseNotConnectedError too."""
    await pool.close()
    for read in (
        list_events(pool, EventQuery()),
        list_events_json(pool, EventQuery()),
        get_event_json(pool, uuid4()),
        get_event(pool, uuid4()),
    ):
        with pytest.raises(DatabaseNotConnectedError, match="pool is closed"):
            await read
