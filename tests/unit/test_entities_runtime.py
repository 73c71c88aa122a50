"""The entities resource when it cannot run: no Postgres, or tables not migrated."""

from __future__ import annotations

import pytest

from app.entities.runtime import Entities
from app.errors import BackendNotConfiguredError, EntitiesNotReadyError


async def test_not_migrated_entities_refuse_use_and_fail_readiness() -> None:
    """With their tables missing, every use and the readiness ping fail naming the tables."""
    entities = Entities.not_migrated("table agents does not exist")
    with pytest.raises(EntitiesNotReadyError, match="table agents does not exist"):
        _ = entities.store
    with pytest.raises(EntitiesNotReadyError, match="table agents does not exist"):
        await entities.ping()
    await entities.start()  # nothing to run; stop is then a no-op
    await entities.stop()


async def test_entities_without_postgres_are_not_configured_but_ready() -> None:
    """With Postgres overridden by None, use is a BackendNotConfiguredError (503) and the
    ping reports them disabled rather than failing."""
    entities = Entities.without_postgres()
    with pytest.raises(BackendNotConfiguredError, match="need Postgres"):
        _ = entities.pool
    assert "disabled" in await entities.ping()


async def test_a_probe_reports_missing_tables_as_pending() -> None:
    """For check (which never migrates) missing tables are pending migrations, not an error."""
    entities = Entities.not_migrated("table agents does not exist", probe=True)
    assert await entities.ping() == {"pending_migrations": "table agents does not exist"}
    with pytest.raises(EntitiesNotReadyError):
        _ = entities.store
