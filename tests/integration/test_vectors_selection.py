"""VECTORS__BACKEND: the selected store serves the container, DataLayer, @inject and HTTP.

Postgres with pgvector is the session's pgserver instance; the loopback Postgres 15 (no
pgvector) is the server that must fail the start (V14).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest
from dependency_injector import providers

from app.errors import ResourceStartError
from app.facade import DataLayer
from app.services.vectors import query_vectors, upsert_vector
from app.vectors import VectorIndex
from app.vectors.pgvector import PgVectorStore
from containers import build_lifecycle, create_container
from containers.accessors import get_vectors
from settings import Settings, load_settings
from tests.conftest import serve_app
from tests.contract.vector_stores import drop_schema
from tests.integration.test_cli import app_env

pytestmark = pytest.mark.integration


def pgvector_settings(tmp_path: Path, dsn: str, schema: str, **overrides: object) -> Settings:
    """distributed on the pgserver instance (auto picks pgvector), Redis on loopback."""
    values: dict[str, object] = {
        "deployment_mode": "distributed",
        "data_dir": tmp_path / "data",
        "redis": {"url": "redis://127.0.0.1:6379/0"},
        "postgres": {"dsn": dsn, "min_connections": 1, "max_connections": 4},
        "faiss": {"index_path": tmp_path / "faiss", "dimension": 4},
        "vectors": {"schema": schema},
        "api": {"tokens": ["test-token"]},
        "log": {"level": "WARNING"},
        "state": {"namespace": schema},
    }
    values.update(overrides)
    return load_settings(**values)


async def test_auto_selects_pgvector_in_distributed_mode_for_every_user(
    tmp_path: Path, pgvector_uri: str, redis_url: str, unique_name: str
) -> None:
    """distributed + auto: the container, @inject services, DataLayer.vectors and the HTTP
    routes all use one PgVectorStore; nothing is written under FAISS__INDEX_PATH."""
    settings = pgvector_settings(tmp_path, pgvector_uri, unique_name)
    try:
        container = create_container(settings)
        container.wire(modules=["app.services.vectors"])
        try:
            async with build_lifecycle(container):
                store = await get_vectors(container)
                assert isinstance(store, PgVectorStore)
                await upsert_vector("docs", "a", [1, 0, 0, 0], {"via": "inject"})
                [hit] = await query_vectors("docs", [1, 0, 0, 0], 1)
                assert (hit.id, hit.metadata) == ("a", {"via": "inject"})
        finally:
            container.unwire()
        async with serve_app(create_container(settings)) as api:
            response = await api.put("/v1/vectors/docs/b", json={"vector": [0, 1, 0, 0]})
            assert response.status_code < 300, response.text
            found = await api.post("/v1/vectors/docs:query", json={"vector": [0, 1, 0, 0]})
            assert [hit["id"] for hit in found.json()["matches"]][:2] == ["b", "a"]
        async with DataLayer(settings) as data:
            assert isinstance(data.vectors, PgVectorStore)
            assert await data.vectors.count("docs") == 2
        assert not (tmp_path / "faiss").exists()
    finally:
        await drop_schema(pgvector_uri, unique_name)


async def test_auto_selects_faiss_in_single_node_and_backend_overrides_auto(
    tmp_path: Path, pgvector_uri: str, unique_name: str
) -> None:
    """single_node + auto is FAISS; VECTORS__BACKEND=pgvector in single_node is pgvector."""
    faiss = load_settings(data_dir=tmp_path / "data", faiss={"index_path": tmp_path / "f"})
    assert faiss.vector_backend == "faiss"
    container = create_container(faiss)
    container.postgres.override(providers.Object(None))  # not what this test is about
    container.database.override(providers.Object(None))
    container.conversation_history.override(providers.Object(None))
    async with build_lifecycle(container):
        assert isinstance(await get_vectors(container), VectorIndex)
    settings = pgvector_settings(
        tmp_path,
        pgvector_uri,
        unique_name,
        deployment_mode="single_node",
        vectors={"schema": unique_name, "backend": "pgvector"},
    )
    try:
        async with DataLayer(settings) as data:
            assert isinstance(data.vectors, PgVectorStore)
    finally:
        await drop_schema(pgvector_uri, unique_name)


async def test_a_server_without_pgvector_fails_the_start_with_the_way_out(
    tmp_path: Path, postgres_dsn: str, redis_url: str, unique_name: str
) -> None:
    """V14 through the container: the loopback Postgres 15 fails the vectors unit, the
    message masks the password and says to install pgvector or use VECTORS__BACKEND=faiss."""
    dsn = postgres_dsn.replace("postgres@", "postgres:s3cret@", 1)
    settings = pgvector_settings(tmp_path, dsn, unique_name)
    with pytest.raises(ResourceStartError) as caught:
        async with build_lifecycle(create_container(settings)):
            pass
    message = str(caught.value)
    assert "vectors failed to start" in message
    assert "found version: none" in message
    assert "VECTORS__BACKEND=faiss" in message
    assert "postgres:***@" in message
    assert "s3cret" not in message


def test_check_reports_store_address_and_version_and_creates_nothing(
    tmp_path: Path, pgvector_uri: str, unique_name: str
) -> None:
    """python -m app check with pgvector names the store, its address and pgvector 0.6.2,
    exits 0, and (read-only) does not create the schema."""
    env = app_env(
        tmp_path,
        DEPLOYMENT_MODE="single_node",
        VECTORS__BACKEND="pgvector",
        VECTORS__SCHEMA=unique_name,
        POSTGRES__DSN=pgvector_uri,
        FAISS__DIMENSION="4",
    )
    result = subprocess.run(
        [sys.executable, "-m", "app", "check"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    [row] = [line for line in result.stdout.splitlines() if line.startswith("vectors")]
    assert "pgvector 0.6.2" in row
    assert f"schema={unique_name}" in row
    assert "host=" in row  # the pgserver socket directory

    async def schema_exists() -> bool:
        connection = await asyncpg.connect(pgvector_uri)
        try:
            found = await connection.fetchval(
                "SELECT 1 FROM pg_namespace WHERE nspname = $1", unique_name
            )
        finally:
            await connection.close()
        return found is not None

    assert asyncio.run(schema_exists()) is False
