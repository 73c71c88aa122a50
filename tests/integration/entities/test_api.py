"""The original service's REST API under /api, in both deployment modes (single_node:
embedded Postgres and the in-process bus; distributed: the server, RabbitMQ, Redis)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from app.events import DataEvent
from containers.accessors import get_event_bus
from tests.integration.entities.conftest import Served
from tests.integration.entities.support import eventually

pytestmark = pytest.mark.integration

JSON = dict[str, Any]


def error_of(response: httpx.Response, status: int, code: str) -> JSON:
    """The response is our error shape with this status and code; its error object."""
    assert response.status_code == status, response.text
    error: JSON = response.json()["error"]
    assert error["code"] == code
    assert error["request_id"] == response.headers["X-Request-ID"]
    return error


async def create(api: httpx.AsyncClient, path: str, body: JSON) -> JSON:
    response = await api.post(f"/api/{path}", json=body)
    assert response.status_code == 201, response.text
    created: JSON = response.json()
    return created


async def new_agent(api: httpx.AsyncClient, name: str = "planner") -> JSON:
    return await create(api, "agents", {"name": name, "agent_type": "reasoning"})


async def test_entity_round_trip_with_etags(entity_api: httpx.AsyncClient) -> None:
    """Create, read, patch, replace and delete an agent; ETags follow the version (D2, D5)."""
    created = await entity_api.post(
        "/api/agents",
        json={"name": "planner", "agent_type": "reasoning", "capabilities": ["plan"]},
    )
    assert created.status_code == 201
    agent = created.json()
    assert created.headers["ETag"] == '"1"'
    assert created.headers["Location"] == f"/api/agents/{agent['id']}"
    assert (agent["status"], agent["version"], agent["configuration"]) == ("active", 1, {})
    url = f"/api/agents/{agent['id']}"
    got = await entity_api.get(url)
    assert got.json() == agent
    assert got.headers["ETag"] == '"1"'
    patched = await entity_api.patch(url, json={"status": "inactive"}, headers={"If-Match": '"1"'})
    assert patched.status_code == 200
    assert patched.headers["ETag"] == '"2"'
    assert patched.json()["status"] == "inactive"
    replaced = await entity_api.put(url, json={"name": "p2", "agent_type": "execution"})
    assert replaced.json()["version"] == 3
    assert replaced.json()["status"] == "active"  # PUT replaces: defaults come back
    stale = await entity_api.delete(url, headers={"If-Match": '"2"'})
    assert error_of(stale, 409, "version_conflict")["details"]["current_version"] == 3
    assert stale.headers["ETag"] == '"3"'
    deleted = await entity_api.delete(url, headers={"If-Match": '"3"'})
    assert deleted.status_code == 204
    error_of(await entity_api.get(url), 404, "not_found")


async def test_stale_if_match_is_a_conflict_with_the_current_version(
    entity_api: httpx.AsyncClient,
) -> None:
    """D2: an If-Match naming an old version is a 409 carrying the current one."""
    agent = await new_agent(entity_api)
    url = f"/api/agents/{agent['id']}"
    await entity_api.patch(url, json={"name": "b"})
    stale = await entity_api.patch(url, json={"name": "c"}, headers={"If-Match": '"1"'})
    error = error_of(stale, 409, "version_conflict")
    assert error["details"] == {"current_version": 2, "expected_version": 1}
    bad = await entity_api.patch(url, json={"name": "c"}, headers={"If-Match": "soon"})
    error_of(bad, 422, "invalid_request")


async def test_d2_fifty_concurrent_patches_with_one_if_match(
    entity_api: httpx.AsyncClient,
) -> None:
    """D2: 50 PATCHes with the same If-Match: exactly 1 success, 49 x 409, one new event."""
    agent = await new_agent(entity_api)
    url = f"/api/agents/{agent['id']}"
    responses = await asyncio.gather(
        *(
            entity_api.patch(url, json={"name": f"n{n}"}, headers={"If-Match": '"1"'})
            for n in range(50)
        )
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] + [409] * 49
    events = await entity_api.get(
        "/api/events", params={"entity_type": "agent", "entity_id": agent["id"]}
    )
    assert [e["entity_version"] for e in events.json()["items"]] == [1, 2]


async def test_missing_parent_and_children(entity_api: httpx.AsyncClient) -> None:
    """A goal naming no agent is a 422 naming agent_id; deleting an agent with goals is a
    409 naming them; the agent's goals are listed under it."""
    missing = await entity_api.post(
        "/api/goals",
        json={"agent_id": "00000000-0000-4000-8000-000000000000", "description": "g"},
    )
    assert error_of(missing, 422, "missing_parent")["details"]["field"] == "agent_id"
    agent = await new_agent(entity_api)
    goal = await create(entity_api, "goals", {"agent_id": agent["id"], "description": "g"})
    plan = await create(entity_api, "plans", {"goal_id": goal["id"], "name": "p"})
    task = await create(entity_api, "tasks", {"plan_id": plan["id"], "name": "t"})
    refused = await entity_api.delete(f"/api/agents/{agent['id']}")
    assert error_of(refused, 409, "has_children")["details"] == {
        "children": {"goals": [goal["id"]]}
    }
    for parent, child, item in (
        ("agents", "goals", goal),
        ("goals", "plans", plan),
        ("plans", "tasks", task),
    ):
        owner = {"agents": agent, "goals": goal, "plans": plan}[parent]
        listed = await entity_api.get(f"/api/{parent}/{owner['id']}/{child}")
        assert listed.json() == {"items": [item], "next_cursor": None}
    unknown = await entity_api.get("/api/agents/00000000-0000-4000-8000-000000000000/goals")
    error_of(unknown, 404, "not_found")


async def test_lists_are_cursor_pages(entity_api: httpx.AsyncClient) -> None:
    """Pages of 3 return each of 7 documents once, oldest first; a foreign cursor is a 422."""
    made = [(await create(entity_api, "documents", {"title": f"d{n}"}))["id"] for n in range(7)]
    seen: list[str] = []
    cursor = None
    while True:
        params: JSON = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        page = (await entity_api.get("/api/documents", params=params)).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == made
    agent = await new_agent(entity_api)
    foreign = await entity_api.get(
        f"/api/agents/{agent['id']}/goals", params={"cursor": "WyJkb2N1bWVudHMiLDFd"}
    )
    error_of(foreign, 422, "invalid_cursor")
    misspelt = await entity_api.get("/api/documents", params={"limt": 3})
    assert "limt" in error_of(misspelt, 422, "invalid_request")["message"]


async def test_events_listing_filters_and_cursor(entity_api: httpx.AsyncClient) -> None:
    """D10: filters by type and entity, after/before, newest first, the cursor, a bounded
    offset, one event by id."""
    agent = await new_agent(entity_api)
    for n in range(4):
        await create(entity_api, "documents", {"title": f"d{n}"})
    await entity_api.patch(f"/api/agents/{agent['id']}", json={"status": "suspended"})
    everything = (await entity_api.get("/api/events", params={"limit": 500})).json()["items"]
    positions = [e["global_position"] for e in everything]
    assert positions == sorted(positions)
    assert len(positions) == 6
    by_type = (await entity_api.get("/api/events", params={"event_type": "agent_suspended"})).json()
    assert [e["entity_id"] for e in by_type["items"]] == [agent["id"]]
    docs = await entity_api.get(
        "/api/events", params={"entity_type": "document", "order": "desc", "limit": 3}
    )
    first = docs.json()
    assert [e["event_type"] for e in first["items"]] == ["document_created"] * 3
    rest = await entity_api.get(
        "/api/events",
        params={
            "entity_type": "document",
            "order": "desc",
            "limit": 3,
            "cursor": first["next_cursor"],
        },
    )
    assert len(rest.json()["items"]) == 1
    assert rest.json()["next_cursor"] is None
    window = await entity_api.get(
        "/api/events", params={"after": positions[0], "before": positions[-1]}
    )
    assert [e["global_position"] for e in window.json()["items"]] == positions[1:-1]
    offset = await entity_api.get("/api/events", params={"offset": 2, "limit": 2})
    assert [e["global_position"] for e in offset.json()["items"]] == positions[2:4]
    error_of(await entity_api.get("/api/events", params={"offset": 10_001}), 422, "invalid_request")
    one = await entity_api.get(f"/api/events/{everything[0]['event_id']}")
    assert one.json() == everything[0]
    missing = await entity_api.get("/api/events/00000000-0000-4000-8000-000000000000")
    error_of(missing, 404, "not_found")
    alone = await entity_api.get("/api/events", params={"entity_id": agent["id"]})
    error_of(alone, 422, "invalid_input")


async def test_d11_metadata_carries_request_caller_and_correlation(
    entity_api: httpx.AsyncClient,
) -> None:
    """D11: the event of an API change names its request id, caller and correlation id."""
    response = await entity_api.post(
        "/api/documents",
        json={"title": "t"},
        headers={"X-Request-ID": "req-1", "X-Correlation-ID": "flow-9"},
    )
    created = response.json()
    events = await entity_api.get(
        "/api/events", params={"entity_type": "document", "entity_id": created["id"]}
    )
    metadata = events.json()["items"][0]["metadata"]
    assert metadata["request_id"] == "req-1"
    assert metadata["correlation_id"] == "flow-9"
    assert metadata["caller"].startswith("token:")


async def test_api_needs_the_token(entity_api: httpx.AsyncClient) -> None:
    """/api is guarded like /v1: no token is a 401 in our error shape."""
    response = await entity_api.get("/api/agents", headers={"Authorization": ""})
    error_of(response, 401, "unauthorized")
    events = await entity_api.get("/api/events", headers={"Authorization": "Bearer wrong"})
    error_of(events, 401, "unauthorized")


async def test_agent_stats_follow_goal_changes(entity_api: httpx.AsyncClient) -> None:
    """GET /api/agents/{id}/stats counts the agent's live goals by status (the projection)."""
    agent = await new_agent(entity_api)
    goals = [
        await create(entity_api, "goals", {"agent_id": agent["id"], "description": f"g{n}"})
        for n in range(3)
    ]
    await entity_api.patch(f"/api/goals/{goals[0]['id']}", json={"status": "completed"})
    await entity_api.delete(f"/api/goals/{goals[1]['id']}")
    expected = {"completed": 1, "pending": 1}

    async def counted() -> bool:
        stats = (await entity_api.get(f"/api/agents/{agent['id']}/stats")).json()
        return bool(stats["goals_by_status"] == expected and stats["total_goals"] == 2)

    await eventually(counted, what="the stats projection catching up")


async def test_relay_delivers_to_the_configured_sinks(served: Served) -> None:
    """D7/D8: each API change reaches the mode's bus as a DataEvent with the event id; in
    distributed mode Redis pub/sub gets the event JSON too."""
    bus = await get_event_bus(served.container)
    received: list[DataEvent] = []

    async def handler(event: DataEvent) -> None:
        received.append(event)

    subscription = bus.subscribe("document_created", handler)
    await subscription
    redis_client = None
    pubsub = None
    if served.settings.deployment_mode == "distributed":
        assert served.settings.redis.url is not None
        redis_client = aioredis.from_url(served.settings.redis.url.get_secret_value())
        pubsub = redis_client.pubsub()
        await pubsub.subscribe("events:document_created")
        await pubsub.get_message(timeout=1.0)
    made = [await create(served.client, "documents", {"title": f"d{n}"}) for n in range(5)]
    await eventually(lambda: len(received) == 5, what="5 bus deliveries")
    events = (
        await served.client.get("/api/events", params={"event_type": "document_created"})
    ).json()["items"]
    assert [str(e.id) for e in received] == [e["event_id"] for e in events]
    assert [e.key for e in received] == [m["id"] for m in made]
    if pubsub is not None and redis_client is not None:
        messages: list[dict[str, Any]] = []
        async with asyncio.timeout(10):
            while len(messages) < 5:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if message is not None:
                    messages.append(json.loads(message["data"]))
        assert [m["event_id"] for m in messages] == [e["event_id"] for e in events]
        await pubsub.aclose()  # type: ignore[no-untyped-call]
        await redis_client.aclose()
    bus.unsubscribe(subscription)
