"""Entity declarations: columns, request models, parents and event types (D6) from a model."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID, uuid4

import pytest
from pydantic import Field

from app.entities import CATALOG, EntityFields, EntityRegistry, Parent
from app.entities.cursor import decode_cursor, encode_cursor
from app.errors import InvalidCursorError
from app.web.errors import ApiError
from app.web.routes.entities import expected_version


class Shelf(EntityFields):
    label: str
    status: Literal["open", "closed"] = "open"


class Book(EntityFields):
    shelf_id: Annotated[UUID, Parent("shelf")]
    title: str
    pages: int = 0
    weight: float | None = None
    tags: list[str] = Field(default_factory=list)
    extra: dict[str, Any] = Field(default_factory=dict)
    read_at: datetime | None = None


def registry() -> EntityRegistry:
    made = EntityRegistry()
    made.register("shelf", "shelves", Shelf)
    made.register("book", "books", Book)
    return made


def test_columns_follow_the_field_annotations() -> None:
    """Each field becomes a column of the matching Postgres type; JSON fields are jsonb."""
    book = registry().get("book")
    types = {c.name: (c.sql_type, c.nullable) for c in book.columns}
    assert types == {
        "shelf_id": ("uuid", False),
        "title": ("text", False),
        "pages": ("bigint", False),
        "weight": ("double precision", True),
        "tags": ("jsonb", False),
        "extra": ("jsonb", False),
        "read_at": ("timestamptz", True),
    }
    assert book.parents == {"shelf_id": "shelf"}
    assert book.parent_tables == {"shelf_id": "shelves"}


def test_children_are_found_by_their_parent_reference() -> None:
    """The registry names every (child type, field) pointing at a type."""
    made = registry()
    assert [(c.name, f) for c, f in made.children(made.get("shelf"))] == [("book", "shelf_id")]
    assert made.children(made.get("book")) == []


def test_a_parent_must_be_registered_first() -> None:
    """Registering a child before its parent names the missing parent."""
    made = EntityRegistry()
    with pytest.raises(ValueError, match="'shelf', which is not registered"):
        made.register("book", "books", Book)


def test_d6_event_types() -> None:
    """D6: created/updated/deleted, and a status change is named by the new status."""
    shelf = registry().get("shelf")
    assert shelf.event_type("created") == "shelf_created"
    assert shelf.event_type("deleted") == "shelf_deleted"
    assert shelf.update_event_type({"label": ("a", "b")}) == "shelf_updated"
    assert shelf.update_event_type({"status": ("open", "closed")}) == "shelf_closed"
    assert shelf.update_event_type({"label": ("a", "b"), "status": ("open", "closed")}) == (
        "shelf_closed"
    )
    book = registry().get("book")
    assert book.update_event_type({"title": ("a", "b")}) == "book_updated"


def test_the_original_types_name_events_by_status() -> None:
    """D6 on the shipped types: plan_completed and task_started, as in the contract."""
    assert CATALOG.get("plan").update_event_type({"status": ("active", "completed")}) == (
        "plan_completed"
    )
    assert CATALOG.get("task").update_event_type({"status": ("pending", "started")}) == (
        "task_started"
    )


def test_a_status_that_reads_as_another_change_is_refused() -> None:
    """D6: a status value 'deleted' would make {entity}_deleted ambiguous, so it is refused."""

    class Bad(EntityFields):
        status: Literal["open", "deleted"] = "open"

    with pytest.raises(ValueError, match="'deleted'"):
        EntityRegistry().register("bad", "bads", Bad)


def test_system_columns_cannot_be_declared() -> None:
    """A field named like a system column (version) is refused at declaration."""

    class Clash(EntityFields):
        version: int

    with pytest.raises(ValueError, match="system columns"):
        EntityRegistry().register("clash", "clashes", Clash)


def test_patch_model_makes_every_field_optional() -> None:
    """PATCH bodies may name any subset of fields; unknown fields are refused."""
    book = registry().get("book")
    assert book.patch_model.model_validate({}).model_dump(exclude_unset=True) == {}
    assert book.patch_model.model_validate({"pages": 3}).model_dump(exclude_unset=True) == {
        "pages": 3
    }
    with pytest.raises(ValueError, match="Extra inputs"):
        book.patch_model.model_validate({"nope": 1})


def test_agent_name_must_not_be_blank() -> None:
    """The original rules: agent names are 1-255 characters and not only whitespace."""
    agent = CATALOG.get("agent")
    for name in ("", "   ", "x" * 256):
        with pytest.raises(ValueError, match="name"):
            agent.fields.model_validate({"name": name, "agent_type": "reasoning"})
    assert agent.fields.model_validate({"name": "a", "agent_type": "execution"})


def test_cursor_round_trip_and_refusals() -> None:
    """A cursor decodes for its own listing only; garbage and others' cursors are refused."""
    token = encode_cursor("agents", ["2026-01-01T00:00:00+00:00", str(uuid4())])
    assert decode_cursor("agents", token, 2)[0] == "2026-01-01T00:00:00+00:00"
    with pytest.raises(InvalidCursorError, match="another listing"):
        decode_cursor("goals", token, 2)
    with pytest.raises(InvalidCursorError, match="not one this API handed out"):
        decode_cursor("agents", "%%%not-base64", 2)


def test_if_match_forms() -> None:
    """If-Match takes the ETag as given ("3", W/"3", 3) or *; anything else is a 422."""
    assert expected_version('"3"') == 3
    assert expected_version('W/"12"') == 12
    assert expected_version("7") == 7
    assert expected_version("*") is None
    assert expected_version(None) is None
    for bad in ('"abc"', '"1", "2"', "-1"):
        with pytest.raises(ApiError, match="If-Match"):
            expected_version(bad)
