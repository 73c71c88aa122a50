"""How the entity store names a driver error (``store_error``), without a database."""

from __future__ import annotations

from uuid import UUID

import asyncpg
import pytest

from app.entities import CATALOG
from app.entities.store_core import store_error
from app.errors import EntityExistsError, UniqueViolationError

TAKEN = UUID("6f1c2e4a-0b7d-4c3e-9a51-2d8f7e6b5a49")


def unique_violation(table: str, detail: str) -> asyncpg.UniqueViolationError:
    exc = asyncpg.UniqueViolationError("duplicate key value violates unique constraint")
    exc.table_name = table
    exc.detail = detail
    return exc


@pytest.mark.parametrize(
    "detail",
    [
        f"Key (id)=({TAKEN}) already exists.",
        f"Schlüssel »(id)=({TAKEN})« existiert bereits.",  # lc_messages=de_DE
    ],
)
def test_a_taken_primary_key_is_entity_exists_in_any_server_language(detail: str) -> None:
    """A unique violation on an entity table's id is EntityExistsError naming type and id,
    whatever language the server writes its DETAIL in."""
    error = store_error(unique_violation("goals", detail), "apply", CATALOG)
    assert isinstance(error, EntityExistsError)
    assert (error.entity_type, error.entity_id) == ("goal", TAKEN)


def test_other_unique_violations_stay_database_errors() -> None:
    """A unique violation outside the entity tables' ids is translated as usual."""
    detail = f"Key (entity_type, entity_id, entity_version)=(goal, {TAKEN}, 2) already exists."
    error = store_error(unique_violation("events", detail), "apply", CATALOG)
    assert isinstance(error, UniqueViolationError)
    assert not isinstance(error, EntityExistsError)
