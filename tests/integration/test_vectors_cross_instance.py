"""V10 across processes: two ``serve`` instances in distributed mode share their vectors.

Both run ``python -m app serve`` with ``DEPLOYMENT_MODE=distributed`` (so
``VECTORS__BACKEND=auto`` picks pgvector) on the session's pgserver Postgres and the
loopback Redis; every vector written through A is queried through B as soon as A answered.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.contract.vector_stores import drop_schema
from tests.integration.test_cli import app_env, free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TOKEN = "cross-instance-token"
WRITES = 200
DIM = 8


@contextmanager
def serving(tmp_path: Path, name: str, env: dict[str, str]) -> Iterator[str]:
    """One ``serve`` process on a free port; its base URL once it answers; SIGTERM after."""
    port = free_port()
    workdir = tmp_path / name
    workdir.mkdir()
    process = subprocess.Popen(
        [sys.executable, "-m", "app", "serve", "--port", str(port)],
        cwd=workdir,
        env=app_env(workdir, **env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"{base}/health/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, process.communicate()[1]
            assert time.monotonic() < deadline, f"{name} was not ready within 90 s"
            time.sleep(0.2)
        yield base
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            _, stderr = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            _, stderr = process.communicate()
        assert process.returncode == 0, stderr


def test_v10_every_write_through_a_is_found_through_b_at_once(
    tmp_path: Path, pgvector_uri: str, redis_url: str, unique_name: str
) -> None:
    """V10: 200 upserts through instance A, each queried through instance B right after A
    answered (no refresh, no wait): all 200 are found, as the best match of their vector."""
    env = {
        "DEPLOYMENT_MODE": "distributed",
        "POSTGRES__DSN": pgvector_uri,
        "POSTGRES__MIN_CONNECTIONS": "1",
        "POSTGRES__MAX_CONNECTIONS": "4",
        "REDIS__URL": redis_url,
        "STATE__NAMESPACE": unique_name,
        "VECTORS__SCHEMA": unique_name,
        "FAISS__DIMENSION": str(DIM),
        "API__TOKENS": TOKEN,
        "API__RATE_LIMIT": "100000",
    }
    vectors = np.random.default_rng(10).standard_normal((WRITES, DIM)).round(4).tolist()
    found = 0
    headers = {"Authorization": f"Bearer {TOKEN}"}
    try:
        with ExitStack() as stack:
            a = stack.enter_context(serving(tmp_path, "a", env))
            b = stack.enter_context(serving(tmp_path, "b", env))
            with httpx.Client(headers=headers, timeout=10) as client:
                for i, vector in enumerate(vectors):
                    written = client.put(f"{a}/v1/vectors/shared/doc-{i}", json={"vector": vector})
                    assert written.status_code < 300, written.text
                    answer = client.post(
                        f"{b}/v1/vectors/shared:query", json={"vector": vector, "top_k": 1}
                    )
                    assert answer.status_code == 200, answer.text
                    matches = answer.json()["matches"]
                    found += bool(matches) and matches[0]["id"] == f"doc-{i}"
        assert (tmp_path / "a" / "faiss").exists() is False
        assert (tmp_path / "b" / "faiss").exists() is False
    finally:
        asyncio.run(drop_schema(pgvector_uri, unique_name))
    assert found == WRITES
