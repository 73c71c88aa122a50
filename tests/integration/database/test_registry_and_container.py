"""The backend registry, the container's database client, and the original usage examples."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from dependency_injector import providers
from dependency_injector.wiring import Provide, inject

from app.database import (
    LEDGER_TABLE,
    DatabaseClient,
    PostgreSQLClient,
    RedisClient,
    create_database_client,
    is_backend_registered,
    list_backends,
    register_backend,
    unregister_backend,
)
from app.errors import BackendAlreadyRegisteredError, ConfigurationError, ResourceStartError
from containers import Container, build_lifecycle, check_readiness, create_container
from containers.accessors import get_database
from settings import Settings, load_settings

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]


class RecordingClient(PostgreSQLClient):
    """A database backend of our own: the client's API, recording the lifecycle calls it gets
    (and running no query)."""

    backend = "recording"  # type: ignore[misc]

    def __init__(self, pool: asyncpg.Pool | None) -> None:
        super().__init__("postgresql://recording.invalid/none")
        self.given_pool = pool
        self.calls: list[str] = []

    async def connect(self) -> None:
        self.calls.append("connect")

    async def close(self) -> None:
        self.calls.append("close")

    async def ping(self) -> None:
        self.calls.append("ping")

    async def run_migrations(self, extra_dirs: Any = (), *, dry_run: bool = False) -> list[Any]:
        self.calls.append("run_migrations")
        return []


@pytest.fixture
def recording_backend(unique_name: str) -> Iterator[tuple[str, list[RecordingClient]]]:
    """A backend registered under a unique name for the test, unregistered after."""
    made: list[RecordingClient] = []

    def factory(settings: Settings, logger: Any, pool: asyncpg.Pool | None) -> DatabaseClient:
        client = RecordingClient(pool)
        made.append(client)
        return client

    register_backend(unique_name, factory)
    yield unique_name, made
    unregister_backend(unique_name)


def settings_on(dsn: str, tmp_path: Path, **overrides: Any) -> Settings:
    return load_settings(
        data_dir=tmp_path / "data",
        postgres={"dsn": dsn, "min_connections": 1, "max_connections": 3, **overrides},
        faiss={"index_path": tmp_path / "faiss", "dimension": 4},
        log={"level": "WARNING"},
    )


def test_the_registry_names_its_backends(
    recording_backend: tuple[str, list[RecordingClient]],
) -> None:
    """postgres is registered at import; a taken name raises unless replace=True."""
    name, _ = recording_backend
    assert is_backend_registered("postgres")
    assert list_backends() == sorted(["postgres", name])
    with pytest.raises(BackendAlreadyRegisteredError, match="replace=True"):
        register_backend(name, lambda s, log, pool: RecordingClient(pool))
    register_backend(name, lambda s, log, pool: RecordingClient(pool), replace=True)
    assert unregister_backend(name) is True
    assert unregister_backend(name) is False
    assert not is_backend_registered(name)


async def test_an_unknown_backend_lists_the_registered_ones(tmp_path: Path) -> None:
    """DATABASE__BACKEND naming no registered backend is a ConfigurationError listing them."""
    settings = load_settings(data_dir=tmp_path, database={"backend": "oracle"})
    with pytest.raises(ConfigurationError, match=r"'oracle'.*registered: postgres"):
        await create_database_client(settings)


async def test_the_container_runs_the_configured_backend_on_its_pool(
    tmp_path: Path,
    fresh_database_dsn: str,
    recording_backend: tuple[str, list[RecordingClient]],
) -> None:
    """With DATABASE__BACKEND naming ours, the container's client is ours, on the container's
    pool, connected, migrated (POSTGRES__MIGRATE=auto), pinged in readiness, closed at stop."""
    name, made = recording_backend
    settings = settings_on(fresh_database_dsn, tmp_path).model_copy(
        update={"database": load_settings(database={"backend": name}).database}
    )
    container = create_container(settings)
    async with build_lifecycle(container) as lifecycle:
        [client] = made
        assert client.given_pool is lifecycle.value("postgres")
        readiness = await check_readiness(lifecycle)
        assert readiness["database"].ok
    assert client.calls == ["connect", "run_migrations", "ping", "close"]


async def test_the_container_migrates_at_start_unless_off(
    tmp_path: Path, fresh_database_dsn: str
) -> None:
    """POSTGRES__MIGRATE=off starts the client without touching the schema; auto applies the
    pending migrations before the client is handed out."""
    off = create_container(settings_on(fresh_database_dsn, tmp_path, migrate="off"))
    async with build_lifecycle(off):
        database = await get_database(off)
        assert await database.fetch_value(f"SELECT to_regclass('{LEDGER_TABLE}')") is None
    auto = create_container(settings_on(fresh_database_dsn, tmp_path))
    async with build_lifecycle(auto):
        database = await get_database(auto)
        assert await database.fetch_value(f"SELECT min(version) FROM {LEDGER_TABLE}") == 1


async def test_a_changed_migration_fails_the_start(tmp_path: Path, fresh_database_dsn: str) -> None:
    """A migration changed after it was applied fails the container's start, naming the file."""
    migrations = tmp_path / "migrations"
    migrations.mkdir()
    (migrations / "1000_t.sql").write_text("CREATE TABLE t (x int);")
    settings = settings_on(fresh_database_dsn, tmp_path, migration_dirs=[migrations])
    async with build_lifecycle(create_container(settings)):
        pass
    (migrations / "1000_t.sql").write_text("CREATE TABLE t (x bigint);")
    with pytest.raises(ResourceStartError, match=r"database failed to start.*1000_t\.sql"):
        async with build_lifecycle(create_container(settings)):
            pass


@inject
async def count_tables(database: PostgreSQLClient = Provide[Container.database]) -> int:
    value = await database.fetch_value(
        "SELECT count(*) FROM pg_tables WHERE tablename = :t", {"t": LEDGER_TABLE}
    )
    assert isinstance(value, int)
    return value


async def test_the_client_is_injectable_and_overridable(
    tmp_path: Path, fresh_database_dsn: str
) -> None:
    """@inject hands out Container.database; an override replaces it and its real resource
    is not started."""
    container = create_container(settings_on(fresh_database_dsn, tmp_path))
    container.wire(modules=[__name__])
    try:
        async with build_lifecycle(container):
            assert await count_tables() == 1
        fake = RecordingClient(None)
        container.database.override(providers.Object(fake))
        async with build_lifecycle(container) as lifecycle:
            assert "database" not in lifecycle.started
            assert await resolve_database(container) is fake
    finally:
        container.unwire()
        container.reset_override()


async def resolve_database(container: Container) -> object:
    return container.database()


@pytest.fixture
def example_data_dir() -> Iterator[Path]:
    """DATA_DIR for the embedded run, outside pytest's tmp tree (see the conftest)."""
    directory = Path(tempfile.mkdtemp(prefix="dbtest-example-"))
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["embedded", "server"])
def test_the_original_usage_examples_run(
    mode: str,
    example_data_dir: Path,
    server_admin_dsn: str,
    redis_url: str,
    unique_name: str,
    request: pytest.FixtureRequest,
) -> None:
    """examples/database_usage.py runs to the end on the embedded Postgres (single_node) and
    on the server (distributed, with the RedisClient examples)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POSTGRES__", "REDIS__"))}
    env.update(DATA_DIR=str(example_data_dir), LOG__LEVEL="WARNING", STATE__NAMESPACE=unique_name)
    if mode == "server":
        dsn: str = request.getfixturevalue("server_database_dsn")
        env.update(POSTGRES__DSN=dsn, DEPLOYMENT_MODE="distributed", REDIS__URL=redis_url)
    result = subprocess.run(
        [sys.executable, "examples/database_usage.py"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "active users: ['ada@example.com']" in result.stdout
    assert "health: healthy" in result.stdout
    assert ("cached embedding:" in result.stdout) is (mode == "server")


async def test_redis_client_releases_what_it_acquired(redis_url: str, unique_name: str) -> None:
    """release_lock(key) without an owner releases the lock this client took under an owner;
    another client's lock is not released."""
    first = RedisClient(redis_url, namespace=unique_name)
    second = RedisClient(redis_url, namespace=unique_name)
    try:
        assert await first.acquire_lock("job", ttl_seconds=5, owner="worker-1")
        assert not await second.acquire_lock("job", ttl_seconds=5)
        assert not await second.release_lock("job")
        assert await first.release_lock("job")
        assert await second.acquire_lock("job", ttl_seconds=5)
    finally:
        await first.disconnect()
        await second.disconnect()
