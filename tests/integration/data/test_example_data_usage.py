"""examples/data_usage.py (the original module's examples) runs in both deployment modes."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from redis.asyncio import Redis

from tests.integration.test_cli import ROOT, app_env

pytestmark = pytest.mark.integration


def run_example(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """``python -m examples.data_usage`` in a clean environment rooted in ``tmp_path``."""
    return subprocess.run(
        [sys.executable, "-m", "examples.data_usage"],
        cwd=tmp_path,
        env=app_env(tmp_path, PYTHONPATH=str(ROOT), FAISS__DIMENSION="4", **env),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


EXPECTED = [
    "memory unit: {'message': 'Hello World'}",
    "string unit: Hello, world",
    "stream subscriber got: first update",
    "history: 4 messages",
    "search 'refund': ['Hello, can you help me with a refund?']",
    "query: 1 message(s)",
    "session metadata: {'theme': 'dark', 'last_page': '/settings'}",
    "parquet: exported 4, re-imported {'total': 4, 'inserted': 0, 'updated': 0, 'skipped': 4}",
    "sessions exported: 1",
]


def test_examples_run_in_single_node(tmp_path: Path) -> None:
    """The examples run on the embedded Postgres and in-memory sessions."""
    result = run_example(tmp_path)
    assert result.returncode == 0, result.stderr
    for line in EXPECTED:
        assert line in result.stdout
    assert "done (single_node)" in result.stdout


@pytest.fixture
async def isolated(
    postgres_dsn: str, redis_url: str, unique_name: str
) -> AsyncIterator[dict[str, str]]:
    """Environment for distributed mode on the shared servers, with a table and namespace of
    the test's own, both removed afterwards."""
    yield {
        "DEPLOYMENT_MODE": "distributed",
        "POSTGRES__DSN": postgres_dsn,
        "REDIS__URL": redis_url,
        "STATE__NAMESPACE": unique_name,
        "CONVERSATIONS__TABLE": unique_name,
        "VECTORS__BACKEND": "faiss",  # the loopback Postgres 15 has no pgvector
    }
    connection = await asyncpg.connect(postgres_dsn)
    try:
        await connection.execute(f'DROP TABLE IF EXISTS "{unique_name}"')
    finally:
        await connection.close()
    client = Redis.from_url(redis_url)
    try:
        keys = [key async for key in client.scan_iter(match=f"{unique_name}:*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


def test_examples_run_in_distributed(tmp_path: Path, isolated: dict[str, str]) -> None:
    """The same examples run on the Postgres server and Redis sessions."""
    result = run_example(tmp_path, **isolated)
    assert result.returncode == 0, result.stderr
    for line in EXPECTED:
        assert line in result.stdout
    assert "done (distributed)" in result.stdout
