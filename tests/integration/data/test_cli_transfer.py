"""``python -m app export|import`` against the real Postgres (a table of the test's own)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest

from app.data import ConversationHistoryUnit, ConversationMessage
from tests.integration.test_cli import run_app

pytestmark = pytest.mark.integration


@pytest.fixture
async def table(pg_pool: asyncpg.Pool, unique_name: str) -> AsyncIterator[ConversationHistoryUnit]:
    """A conversations table only this test uses, with three messages, dropped after."""
    history = ConversationHistoryUnit(pg_pool, unique_name)
    await history.initialize()
    await history.save_messages_batch(
        [
            ConversationMessage(f"c{i % 2}", f"question {i}", "answer", datetime.now(UTC), 1.5)
            for i in range(3)
        ]
    )
    yield history
    await pg_pool.execute(f'DROP TABLE IF EXISTS "{unique_name}"')


async def test_export_then_import_with_skip_duplicates_from_the_command_line(
    tmp_path: Path, postgres_dsn: str, table: ConversationHistoryUnit
) -> None:
    """export writes every message; import of the same file skips them all and says so."""
    env = {"POSTGRES__DSN": postgres_dsn, "CONVERSATIONS__TABLE": table.table_name}
    out = tmp_path / "all.csv"
    exported = run_app(tmp_path, "export", str(out), **env)
    assert exported.returncode == 0, exported.stderr
    assert json.loads(exported.stdout) == {"exported": 3, "file": str(out), "format": "csv"}
    imported = run_app(tmp_path, "import", str(out), "--merge", "skip_duplicates", **env)
    assert imported.returncode == 0, imported.stderr
    assert json.loads(imported.stdout) == {"total": 3, "inserted": 0, "updated": 0, "skipped": 3}
    refused = run_app(tmp_path, "import", str(out), **env)
    assert refused.returncode == 2
    assert "already stored" in refused.stderr
    assert len(await table.get_conversation_history("c0")) == 2
