"""The entity types of the original service: agents, goals, plans, tasks, documents.

Each is one field model plus one registration line at the bottom; its table is in
``app/database/migrations/0100_entities.sql``. Adding a type takes the same three things.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import Field, StringConstraints

from app.entities.declaration import EntityFields, Parent
from app.entities.registry import EntityRegistry

__all__ = ["CATALOG", "Agent", "Document", "Goal", "Plan", "Task"]

Name = Annotated[str, StringConstraints(min_length=1, max_length=255, pattern=r"\S")]
JsonObject = dict[str, Any]


class Agent(EntityFields):
    """An agent of the platform."""

    name: Name
    agent_type: Literal["reasoning", "execution", "coordination"]
    status: Literal["active", "inactive", "suspended"] = "active"
    capabilities: list[Any] = Field(default_factory=list)
    configuration: JsonObject = Field(default_factory=dict)


class Goal(EntityFields):
    """A goal an agent pursues."""

    agent_id: Annotated[UUID, Parent("agent")]
    description: Annotated[str, StringConstraints(min_length=1, max_length=10_000)]
    priority: int = Field(default=0, ge=-1_000_000, le=1_000_000)
    status: Literal["pending", "active", "completed", "failed", "cancelled"] = "pending"
    completed_at: datetime | None = None


class Plan(EntityFields):
    """A plan towards a goal: an ordered list of steps."""

    goal_id: Annotated[UUID, Parent("goal")]
    name: Name
    description: str = ""
    status: Literal["draft", "active", "completed", "failed", "cancelled"] = "draft"
    steps: list[Any] = Field(default_factory=list)


class Task(EntityFields):
    """A unit of work within a plan."""

    plan_id: Annotated[UUID, Parent("plan")]
    name: Name
    status: Literal["pending", "started", "completed", "failed", "cancelled"] = "pending"
    input: JsonObject = Field(default_factory=dict)
    output: JsonObject | None = None


class Document(EntityFields):
    """A document (text with metadata)."""

    title: Name
    content: str = ""
    metadata: JsonObject = Field(default_factory=dict)


CATALOG = EntityRegistry()
CATALOG.register("agent", "agents", Agent)
CATALOG.register("goal", "goals", Goal)
CATALOG.register("plan", "plans", Plan)
CATALOG.register("task", "tasks", Task)
CATALOG.register("document", "documents", Document)
