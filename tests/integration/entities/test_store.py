"""The write path on a real Postgres: one change = entity row + exactly one event (D1-D3, D5,
D6, D11), parents and children, batches."""

from __future__ import annotations

import asyncio
from uuid import UUID, uuid4

import asyncpg
import pytest

from app.entities import ChangeContext, Create, Delete, EntityStore, Update, change_context
from app.errors import (
    ConcurrencyError,
    EntityNotFoundError,
    HasChildrenError,
    InvalidEntityError,
    MissingParentError,
    QueryError,
)

pytestmark = pytest.mark.integration


async def events_of(pool: asyncpg.Pool, entity_id: UUID) -> list[asyncpg.Record]:
    return await pool.fetch(
        "SELECT * FROM events WHERE entity_id = $1 ORDER BY global_position", entity_id
    )


async def new_agent(store: EntityStore, name: str = "ada") -> UUID:
    written = await store.create("agent", {"name": name, "agent_type": "reasoning"})
    return written.entity.id  # type: ignore[attr-defined, no-any-return]


async def test_d1_create_writes_row_and_one_event(store: EntityStore, pool: asyncpg.Pool) -> None:
    """D1/D6: a create stores the row at version 1 and exactly one agent_created event."""
    agent_id = await new_agent(store)
    row = await pool.fetchrow("SELECT version, name FROM agents WHERE id = $1", agent_id)
    assert row is not None
    assert (row["version"], row["name"]) == (1, "ada")
    events = await events_of(pool, agent_id)
    assert [(e["event_type"], e["entity_version"]) for e in events] == [("agent_created", 1)]


async def test_d1_a_failed_event_insert_leaves_no_row(
    store: EntityStore, pool: asyncpg.Pool
) -> None:
    """D1: when the event cannot be written, the entity row is not written either (the
    refusal comes out as a typed QueryError)."""
    await pool.execute(
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "IF NEW.payload->'state'->>'name' = 'boom' THEN RAISE EXCEPTION 'refused'; END IF; "
        "RETURN NEW; END $$; "
        "CREATE TRIGGER refuse BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION refuse()"
    )
    with pytest.raises(QueryError, match="refused") as caught:
        await store.create("agent", {"name": "boom", "agent_type": "reasoning"})
    assert isinstance(caught.value.__cause__, asyncpg.RaiseError)
    assert await pool.fetchval("SELECT count(*) FROM agents") == 0
    with pytest.raises(QueryError, match="refused"):
        await store.apply(
            [
                Create("agent", {"name": "fine", "agent_type": "reasoning"}),
                Create("agent", {"name": "boom", "agent_type": "reasoning"}),
            ]
        )
    assert await pool.fetchval("SELECT count(*) FROM agents") == 0
    assert await pool.fetchval("SELECT count(*) FROM events") == 0


async def test_d2_fifty_concurrent_updates_from_one_version(
    store: EntityStore, pool: asyncpg.Pool
) -> None:
    """D2: 50 updates naming version 1 at once: 1 succeeds, 49 conflict, one new event."""
    agent_id = await new_agent(store)

    async def attempt(n: int) -> str:
        try:
            await store.update("agent", agent_id, {"name": f"n{n}"}, expected_version=1)
        except ConcurrencyError as exc:
            return f"conflict at {exc.current}"
        return "ok"

    outcomes = await asyncio.gather(*(attempt(n) for n in range(50)))
    assert outcomes.count("ok") == 1
    assert outcomes.count("conflict at 2") == 49
    assert [e["entity_version"] for e in await events_of(pool, agent_id)] == [1, 2]


async def test_d2_unconditional_updates_all_land(store: EntityStore, pool: asyncpg.Pool) -> None:
    """Without an expected version, concurrent updates retry and each one lands (D3: 1..n)."""
    agent_id = await new_agent(store)
    await asyncio.gather(
        *(store.update("agent", agent_id, {"configuration": {"n": n}}) for n in range(20))
    )
    versions = [e["entity_version"] for e in await events_of(pool, agent_id)]
    assert versions == list(range(1, 22))


async def test_d3_versions_are_unique_per_entity(store: EntityStore, pool: asyncpg.Pool) -> None:
    """D3: the events table itself refuses a second event for the same entity version."""
    agent_id = await new_agent(store)
    with pytest.raises(asyncpg.UniqueViolationError):
        await pool.execute(
            "INSERT INTO events SELECT -1, gen_random_uuid(), event_type, entity_type, "
            "entity_id, entity_version, payload, metadata, created_at FROM events "
            "WHERE entity_id = $1",
            agent_id,
        )


async def test_d6_status_changes_name_the_event(store: EntityStore, pool: asyncpg.Pool) -> None:
    """D6: status changes record {entity}_{status}; other changes {entity}_updated."""
    agent_id = await new_agent(store)
    goal = await store.create("goal", {"agent_id": agent_id, "description": "g"})
    goal_id = goal.entity.id  # type: ignore[attr-defined]
    first = await store.update("goal", goal_id, {"status": "active"})
    second = await store.update("goal", goal_id, {"priority": 3})
    third = await store.update("goal", goal_id, {"status": "completed", "priority": 4})
    assert first.event is not None
    assert first.event.event_type == "goal_active"
    assert second.event is not None
    assert second.event.event_type == "goal_updated"
    assert third.event is not None
    assert third.event.event_type == "goal_completed"
    assert third.event.payload["changes"] == {
        "status": ["active", "completed"],
        "priority": [3, 4],
    }
    unchanged = await store.update("goal", goal_id, {"priority": 4})
    assert unchanged.event is None
    assert len(await events_of(pool, goal_id)) == 4


async def test_d5_delete_is_an_event_and_a_tombstone(
    store: EntityStore, pool: asyncpg.Pool
) -> None:
    """D5: a delete records {entity}_deleted, keeps the row as a tombstone, hides it."""
    doc = await store.create("document", {"title": "t", "content": "c"})
    doc_id = doc.entity.id  # type: ignore[attr-defined]
    deleted = await store.delete("document", doc_id, expected_version=1)
    assert deleted.event is not None
    assert deleted.event.event_type == "document_deleted"
    row = await pool.fetchrow("SELECT version, deleted_at FROM documents WHERE id = $1", doc_id)
    assert row is not None
    assert row["version"] == 2
    assert row["deleted_at"] is not None
    with pytest.raises(EntityNotFoundError):
        await store.get("document", doc_id)
    with pytest.raises(EntityNotFoundError):
        await store.update("document", doc_id, {"title": "again"})
    assert [e["event_type"] for e in await events_of(pool, doc_id)] == [
        "document_created",
        "document_deleted",
    ]


async def test_missing_parent_names_the_field(store: EntityStore, pool: asyncpg.Pool) -> None:
    """A goal naming no live agent is refused with the field named; nothing is written."""
    missing = uuid4()
    with pytest.raises(MissingParentError, match="agent_id") as caught:
        await store.create("goal", {"agent_id": missing, "description": "g"})
    assert caught.value.field == "agent_id"
    agent_id = await new_agent(store)
    await store.delete("agent", agent_id)
    with pytest.raises(MissingParentError, match="agent_id"):
        await store.create("goal", {"agent_id": agent_id, "description": "g"})
    assert await pool.fetchval("SELECT count(*) FROM goals") == 0
    assert await pool.fetchval("SELECT count(*) FROM events WHERE entity_type = 'goal'") == 0


async def test_a_parent_with_children_is_not_deleted(store: EntityStore) -> None:
    """Deleting an agent with live goals is refused naming them; once they are gone it works."""
    agent_id = await new_agent(store)
    goal = await store.create("goal", {"agent_id": agent_id, "description": "g"})
    goal_id = goal.entity.id  # type: ignore[attr-defined]
    with pytest.raises(HasChildrenError) as caught:
        await store.delete("agent", agent_id)
    assert caught.value.children == {"goals": [str(goal_id)]}
    await store.delete("goal", goal_id)
    deleted = await store.delete("agent", agent_id)
    assert deleted.deleted


async def test_delete_races_a_child_create(store: EntityStore, pool: asyncpg.Pool) -> None:
    """A child created while its parent is deleted: either the delete is refused or the
    child is; never a live child under a deleted parent."""
    for _ in range(10):
        agent_id = await new_agent(store)
        results = await asyncio.gather(
            store.delete("agent", agent_id),
            store.create("goal", {"agent_id": agent_id, "description": "g"}),
            return_exceptions=True,
        )
        orphans = await pool.fetchval(
            "SELECT count(*) FROM goals g JOIN agents a ON a.id = g.agent_id "
            "WHERE g.deleted_at IS NULL AND a.deleted_at IS NOT NULL"
        )
        assert orphans == 0
        assert sum(isinstance(r, Exception) for r in results) == 1, results


async def test_invalid_fields_are_refused_before_writing(
    store: EntityStore, pool: asyncpg.Pool
) -> None:
    """Fields outside the model (a bad enum value, a merged PATCH, a NUL character Postgres
    cannot store) are a typed 422 error, and nothing is written."""
    with pytest.raises(InvalidEntityError, match="agent_type"):
        await store.create("agent", {"name": "a", "agent_type": "wizard"})
    agent_id = await new_agent(store)
    with pytest.raises(InvalidEntityError, match="status"):
        await store.update("agent", agent_id, {"status": "asleep"})
    with pytest.raises(InvalidEntityError, match=r"configuration\.a\[1\] holds a NUL"):
        await store.update("agent", agent_id, {"configuration": {"a": ["ok", "b\x00d"]}})
    with pytest.raises(InvalidEntityError, match="name holds a NUL"):
        await store.apply([Create("agent", {"name": "x\x00", "agent_type": "reasoning"})])
    assert await pool.fetchval("SELECT count(*) FROM events") == 1


async def test_d11_metadata_records_who_changed_it(store: EntityStore) -> None:
    """D11: request id, caller and correlation id of the change are in the event's metadata."""
    context = ChangeContext(request_id="r1", caller="token:abc", correlation_id="c1")
    with change_context(context):
        written = await store.create("agent", {"name": "a", "agent_type": "execution"})
    assert written.event is not None
    assert written.event.metadata == {
        "request_id": "r1",
        "caller": "token:abc",
        "correlation_id": "c1",
    }
    explicit = await store.create(
        "document", {"title": "t"}, context=ChangeContext(request_id="r2")
    )
    assert explicit.event is not None
    assert explicit.event.metadata == {"request_id": "r2"}


async def test_batch_is_one_transaction_in_order(store: EntityStore, pool: asyncpg.Pool) -> None:
    """A batch sees its own earlier changes and commits all events in order, or nothing."""
    agent_id = uuid4()
    written = await store.apply(
        [
            Create("agent", {"name": "a", "agent_type": "coordination"}, id=agent_id),
            Create("goal", {"agent_id": agent_id, "description": "g1"}),
            Create("goal", {"agent_id": agent_id, "description": "g2"}),
            Update("agent", agent_id, {"status": "inactive"}, expected_version=1),
        ]
    )
    positions = [w.event.global_position for w in written if w.event]
    assert positions == sorted(positions)
    assert len(positions) == 4
    assert [w.event.event_type for w in written if w.event] == [
        "agent_created",
        "goal_created",
        "goal_created",
        "agent_inactive",
    ]
    before = await pool.fetchval("SELECT count(*) FROM events")
    goal_id = written[1].entity.id  # type: ignore[attr-defined]
    with pytest.raises(ConcurrencyError):
        await store.apply(
            [Delete("goal", goal_id), Update("agent", agent_id, {"name": "b"}, expected_version=1)]
        )
    assert await pool.fetchval("SELECT count(*) FROM events") == before
    assert (await store.get("goal", goal_id)).version == 1  # type: ignore[attr-defined]


async def test_batch_of_creates_checks_parents(store: EntityStore, pool: asyncpg.Pool) -> None:
    """Many creates in one statement still refuse a missing parent, naming the field."""
    agent_id = await new_agent(store)
    with pytest.raises(MissingParentError, match="agent_id"):
        await store.apply(
            [
                Create("goal", {"agent_id": agent_id, "description": "ok"}),
                Create("goal", {"agent_id": uuid4(), "description": "orphan"}),
            ]
        )
    assert await pool.fetchval("SELECT count(*) FROM goals") == 0


async def test_one_statement_batch_agrees_with_the_transaction_path(
    store: EntityStore, pool: asyncpg.Pool
) -> None:
    """A batch of creates without parents (one statement) stores the same rows and events as
    the general transaction path (taken here because the batch ends with an update)."""
    fast = await store.apply([Create("document", {"title": f"t{n}"}) for n in range(3)])
    for written in fast:
        stored = await store.get("document", written.entity.id)  # type: ignore[attr-defined]
        assert stored.model_dump() == written.entity.model_dump()
    last = fast[-1].entity.id  # type: ignore[attr-defined]
    general = await store.apply(
        [
            *(Create("document", {"title": f"t{n}"}) for n in range(3)),
            Update("document", last, {"content": "x"}),
        ]
    )
    events = await pool.fetch(
        "SELECT event_type, entity_type, entity_version, payload, metadata FROM events "
        "ORDER BY global_position"
    )
    assert [dict(e) for e in events[:3]] == [dict(e) for e in events[3:6]]
    fast_rows = [w.entity.model_dump(exclude={"id", "created_at", "updated_at"}) for w in fast]
    general_rows = [
        w.entity.model_dump(exclude={"id", "created_at", "updated_at"}) for w in general[:3]
    ]
    assert fast_rows == general_rows
    assert [w.event.global_position for w in fast if w.event] == [1, 2, 3]
