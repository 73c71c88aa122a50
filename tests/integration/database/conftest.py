"""A database of our own for the session, on the loopback server and on an embedded server.

Every test that takes ``db`` runs twice: against the real Postgres on loopback (a database
created for this session and dropped after) and against an embedded Postgres (pgserver) in a
temporary directory, stopped after.
"""

from __future__ import annotations

import asyncio
import importlib
import shutil
import tempfile
import uuid
import warnings
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from app.database import PostgreSQLClient
from tests.services import (
    POSTGRES_DSN,
    create_database,
    drop_database,
    require_service,
    with_database,
)


@pytest.fixture(scope="session")
def server_admin_dsn() -> str:
    """The loopback Postgres, connected to a database we only create others from."""
    return require_service("Postgres", POSTGRES_DSN)


@pytest.fixture(scope="session")
def server_database_dsn(server_admin_dsn: str) -> Iterator[str]:
    """A database created on the loopback Postgres for this session, dropped after."""
    name = f"dbtest_{uuid.uuid4().hex[:12]}"
    asyncio.run(create_database(server_admin_dsn, name))
    yield with_database(server_admin_dsn, name)
    asyncio.run(drop_database(server_admin_dsn, name))


def start_pgserver(directory: Path) -> Any:
    with warnings.catch_warnings():  # as the app imports it (XDG_RUNTIME_DIR unset here)
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
        module = importlib.import_module("pgserver.postgres_server")
    return module.get_server(directory, cleanup_mode="stop")


@pytest.fixture(scope="session")
def embedded_admin_dsn() -> Iterator[str]:
    """An embedded Postgres (pgserver) in a temporary directory for the session, stopped after.

    Not under pytest's tmp_path: run as root, pgserver's server runs as its own user, and any
    pytest session starting meanwhile makes /tmp/pytest-of-root private again (the server then
    panics on its own files).
    """
    directory = Path(tempfile.mkdtemp(prefix="dbtest-embedded-"))
    try:
        server = start_pgserver(directory / "pgdata")
        try:
            yield str(server.get_uri("postgres"))
        finally:
            server.cleanup()
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def embedded_database_dsn(embedded_admin_dsn: str) -> str:
    """A database on the embedded Postgres for this session (gone with the server)."""
    asyncio.run(create_database(embedded_admin_dsn, "dbtest"))
    return with_database(embedded_admin_dsn, "dbtest")


@pytest.fixture(params=["server", "embedded"])
def database_dsn(request: pytest.FixtureRequest) -> str:
    """The DSN of the session's database, on each kind of server in turn."""
    dsn: str = request.getfixturevalue(f"{request.param}_database_dsn")
    return dsn


@pytest.fixture(params=["server", "embedded"])
async def fresh_database_dsn(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """An empty database of the test's own, on each kind of server in turn; dropped after."""
    admin: str = request.getfixturevalue(f"{request.param}_admin_dsn")
    name = f"dbfresh_{uuid.uuid4().hex[:12]}"
    await create_database(admin, name)
    yield with_database(admin, name)
    await drop_database(admin, name)


@pytest.fixture
async def db(database_dsn: str) -> AsyncIterator[PostgreSQLClient]:
    """A connected client with its own small pool; closed after the test."""
    client = PostgreSQLClient(database_dsn, pool_size=2, max_overflow=0)
    await client.connect()
    yield client
    await client.close()


@pytest.fixture
async def table(db: PostgreSQLClient, unique_name: str) -> AsyncIterator[str]:
    """A fresh ``items`` table under a unique name, dropped after the test."""
    await db.execute(
        f"""CREATE TABLE {unique_name} (
            id serial PRIMARY KEY,
            name text NOT NULL UNIQUE,
            score double precision,
            "order" integer,
            active boolean NOT NULL DEFAULT true
        )"""
    )
    yield unique_name
    await db.execute(f"DROP TABLE IF EXISTS {unique_name}")
