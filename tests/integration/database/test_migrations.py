"""Migrations on a fresh database (loopback server and embedded): order, atomicity, checksums,
dry runs, status, repair, and three processes starting at once."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from app.database import PostgreSQLClient
from app.database.migration_files import PRODUCT_SOURCE, checksum, discover, migration_sources
from app.database.migrator import LEDGER_TABLE, MigrationRunner, load_migration_runner
from app.errors import MigrationChecksumError, MigrationFailedError, MigrationFileError

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
async def fresh_db(fresh_database_dsn: str) -> AsyncIterator[PostgreSQLClient]:
    """A client on an empty database of the test's own."""
    client = PostgreSQLClient(fresh_database_dsn, pool_size=2, max_overflow=0)
    await client.connect()
    yield client
    await client.close()


def write(directory: Path, name: str, sql: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(sql)
    return path


async def runner(db: PostgreSQLClient, *dirs: Path) -> MigrationRunner:
    assert db.pool is not None
    return await load_migration_runner(db.pool, dirs)


async def ledger(db: PostgreSQLClient) -> list[tuple[int, str, str]]:
    rows = await db.fetch_all(
        f"SELECT version, name, checksum FROM {LEDGER_TABLE} ORDER BY version"
    )
    return [(row["version"], row["name"], row["checksum"]) for row in rows]


async def test_product_then_user_files_apply_once_with_gaps(
    fresh_db: PostgreSQLClient, tmp_path: Path
) -> None:
    """The product's files, then the user's, in order despite gaps; a second run applies none;
    a file added later into a gap is applied by the next run."""
    mine = tmp_path / "mine"
    write(mine, "1100_c.sql", "INSERT INTO steps VALUES ('c');")
    write(mine, "1000_a.sql", "CREATE TABLE steps (name text);")
    write(mine, "1005_b.sql", "INSERT INTO steps VALUES ('b');")
    applied = await (await runner(fresh_db, mine)).apply()
    assert [m.file_name for m in applied][-3:] == ["1000_a.sql", "1005_b.sql", "1100_c.sql"]
    assert applied[0].source == PRODUCT_SOURCE
    assert await fresh_db.fetch_all("SELECT name FROM steps") == [{"name": "b"}, {"name": "c"}]
    rows = await ledger(fresh_db)
    assert [(v, c) for v, _, c in rows] == [(m.version, m.checksum) for m in applied]
    assert await (await runner(fresh_db, mine)).apply() == []
    write(mine, "1003_gap.sql", "INSERT INTO steps VALUES ('gap');")
    late = await (await runner(fresh_db, mine)).apply()
    assert [m.file_name for m in late] == ["1003_gap.sql"]


async def test_a_failing_file_leaves_neither_its_changes_nor_its_row(
    fresh_db: PostgreSQLClient, tmp_path: Path
) -> None:
    """A file whose second statement fails is rolled back whole, ledger row included; the files
    before it stay applied, and the error names the file."""
    write(tmp_path, "1000_ok.sql", "CREATE TABLE kept (x int);")
    bad = write(tmp_path, "1001_bad.sql", "CREATE TABLE half (x int);\nSELECT no_such_column;")
    with pytest.raises(MigrationFailedError, match=str(bad)):
        await (await runner(fresh_db, tmp_path)).apply()
    versions = [version for version, _, _ in await ledger(fresh_db)]
    assert versions[-1] == 1000
    assert await fresh_db.fetch_value("SELECT to_regclass('half')") is None
    assert await fresh_db.fetch_value("SELECT to_regclass('kept')") == "kept"


async def test_a_no_transaction_file_runs_statement_by_statement(
    fresh_db: PostgreSQLClient, tmp_path: Path
) -> None:
    """The marker lets CREATE INDEX CONCURRENTLY run (refused inside a transaction)."""
    write(tmp_path, "1000_t.sql", "CREATE TABLE t (x int);")
    write(
        tmp_path,
        "1001_index.sql",
        "-- migrate: no-transaction\nCREATE INDEX CONCURRENTLY t_x ON t (x);\n"
        "CREATE INDEX CONCURRENTLY t_x2 ON t ((x * 2));\n",
    )
    await (await runner(fresh_db, tmp_path)).apply()
    indexes = await fresh_db.fetch_all("SELECT indexname FROM pg_indexes WHERE tablename = 't'")
    assert {row["indexname"] for row in indexes} == {"t_x", "t_x2"}


async def test_a_changed_file_fails_naming_both_checksums_until_repaired(
    fresh_db: PostgreSQLClient, tmp_path: Path
) -> None:
    """Changing an applied file fails the next run before anything runs (a new file stays
    pending), naming the file and both checksums; repair accepts it, then the run goes on."""
    path = write(tmp_path, "1000_t.sql", "CREATE TABLE t (x int);")
    await (await runner(fresh_db, tmp_path)).apply()
    old = checksum(path.read_text())
    path.write_text("CREATE TABLE t (x bigint);")
    write(tmp_path, "1001_next.sql", "CREATE TABLE n (x int);")
    with pytest.raises(MigrationChecksumError) as caught:
        await (await runner(fresh_db, tmp_path)).apply()
    new = checksum(path.read_text())
    assert (caught.value.file, caught.value.applied_checksum) == (str(path), old)
    assert caught.value.current_checksum == new
    assert old in str(caught.value)
    assert new in str(caught.value)
    assert await fresh_db.fetch_value("SELECT to_regclass('n')") is None
    states = {s.name: s.state for s in await (await runner(fresh_db, tmp_path)).status()}
    assert (states["t"], states["next"]) == ("changed", "pending")
    repaired = await (await runner(fresh_db, tmp_path)).repair()
    assert [m.file_name for m in repaired] == ["1000_t.sql"]
    assert [m.file_name for m in await (await runner(fresh_db, tmp_path)).apply()] == [
        "1001_next.sql"
    ]


async def test_crlf_line_endings_are_not_a_change(
    fresh_db: PostgreSQLClient, tmp_path: Path
) -> None:
    """The same file checked out with CRLF line endings passes the checksum."""
    path = write(tmp_path, "1000_t.sql", "CREATE TABLE t (x int);\nCREATE TABLE u (x int);\n")
    await (await runner(fresh_db, tmp_path)).apply()
    path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))
    assert await (await runner(fresh_db, tmp_path)).apply() == []


async def test_a_dry_run_and_status_change_nothing(
    fresh_db: PostgreSQLClient, tmp_path: Path
) -> None:
    """A dry run lists the pending files without creating even the ledger; status shows a row
    whose file has gone as 'file missing'."""
    write(tmp_path, "1000_t.sql", "CREATE TABLE t (x int);")
    pending = await (await runner(fresh_db, tmp_path)).apply(dry_run=True)
    assert [m.file_name for m in pending][-1] == "1000_t.sql"
    assert await fresh_db.fetch_value(f"SELECT to_regclass('{LEDGER_TABLE}')") is None
    await (await runner(fresh_db, tmp_path)).apply()
    (tmp_path / "1000_t.sql").unlink()
    states = await (await runner(fresh_db, tmp_path)).status()
    assert [(s.version, s.state) for s in states][-1] == (1000, "file missing")


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"1000_a.sql": "", "1000_b.sql": ""}, "version 1000 is used twice"),
        ({"0001_mine.sql": ""}, "version 0001 is used twice: app.database.migrations"),
        ({"12_short.sql": ""}, "NNNN_name.sql"),
        ({"1000-Bad Name.sql": ""}, "NNNN_name.sql"),
    ],
)
async def test_bad_files_are_refused_before_anything_runs(
    fresh_db: PostgreSQLClient, tmp_path: Path, files: dict[str, str], message: str
) -> None:
    """Duplicate versions (also against the product's) and bad names are MigrationFileErrors."""
    for name, sql in files.items():
        write(tmp_path, name, sql)
    with pytest.raises(MigrationFileError, match=message):
        await runner(fresh_db, tmp_path)
    with pytest.raises(MigrationFileError, match="does not exist"):
        await runner(fresh_db, tmp_path / "missing")


@pytest.mark.slow
async def test_three_processes_starting_together_apply_each_file_once(
    fresh_database_dsn: str, tmp_path: Path
) -> None:
    """Three `python -m app migrate` processes on an empty database: all succeed, each file is
    applied exactly once (a slow file keeps the others waiting on the lock)."""
    write(tmp_path, "1000_log.sql", "CREATE TABLE applied_by (pid int);")
    write(
        tmp_path,
        "1001_slow.sql",
        "SELECT pg_sleep(1.5);\nINSERT INTO applied_by VALUES (pg_backend_pid());",
    )
    env = {
        **os.environ,
        "POSTGRES__DSN": fresh_database_dsn,
        "POSTGRES__MIGRATION_DIRS": str(tmp_path),
        "LOG__LEVEL": "WARNING",
    }
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "app",
            "migrate",
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(3)
    ]
    outputs = await asyncio.gather(*(process.communicate() for process in processes))
    for process, (_, err) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, err.decode()
    applied_lines = [out.decode().count("applied ") for out, _ in outputs]
    # One process applied all (the product's files and the two here); two found nothing.
    files = [migration.version for migration in discover(migration_sources([tmp_path]))]
    assert sorted(applied_lines) == [0, 0, len(files)]
    connection = await asyncpg.connect(fresh_database_dsn)
    try:
        assert await connection.fetchval("SELECT count(*) FROM applied_by") == 1
        versions = await connection.fetch(f"SELECT version FROM {LEDGER_TABLE} ORDER BY 1")
        assert [row["version"] for row in versions] == sorted(files)
        assert {1000, 1001} <= set(files)
    finally:
        await connection.close()


def run_migrate(dsn: str, directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "POSTGRES__DSN": dsn,
        "POSTGRES__MIGRATION_DIRS": str(directory),
        "LOG__LEVEL": "WARNING",
    }
    return subprocess.run(
        [sys.executable, "-m", "app", "migrate", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.slow
def test_the_cli_applies_lists_and_fails_in_one_line(
    fresh_database_dsn: str, tmp_path: Path
) -> None:
    """migrate --dry-run lists, migrate applies, status tabulates; a changed file exits 2 with
    one line naming the file; repair accepts it."""
    path = write(tmp_path, "1000_t.sql", "CREATE TABLE t (x int);")
    dry = run_migrate(fresh_database_dsn, tmp_path, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert f"would apply {path}" in dry.stdout
    applied = run_migrate(fresh_database_dsn, tmp_path)
    assert f"applied {path}" in applied.stdout
    status = run_migrate(fresh_database_dsn, tmp_path, "status")
    assert status.stdout.splitlines()[0].split() == [
        "version", "name", "state", "applied_at", "source"
    ]  # fmt: skip
    product_and_here = discover(migration_sources([tmp_path]))
    assert {line.split()[0]: line.split()[2] for line in status.stdout.splitlines()[1:]} == {
        f"{migration.version:04d}": "applied" for migration in product_and_here
    }
    path.write_text("CREATE TABLE t (x bigint);")
    failed = run_migrate(fresh_database_dsn, tmp_path)
    assert failed.returncode == 2
    [line] = failed.stderr.strip().splitlines()
    assert line.startswith(f"error: migration {path} was changed after it was applied")
    repaired = run_migrate(fresh_database_dsn, tmp_path, "repair")
    assert f"accepted the new checksum of {path}" in repaired.stdout
    assert run_migrate(fresh_database_dsn, tmp_path).returncode == 0


@pytest.mark.slow
async def test_check_never_migrates(fresh_database_dsn: str, tmp_path: Path) -> None:
    """`python -m app check` reports the database ready without applying any migration (the
    entities report their tables as pending migrations)."""
    env = {
        **os.environ,
        "POSTGRES__DSN": fresh_database_dsn,
        "DATA_DIR": str(tmp_path / "data"),
        "FAISS__INDEX_PATH": str(tmp_path / "faiss"),
        "FAISS__DIMENSION": "4",
        "LOG__LEVEL": "WARNING",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "app", "check", cwd=ROOT, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    out, err = await process.communicate()
    table = out.decode().partition("\n\n")[0]
    statuses = {line.split()[0]: line.split()[1] for line in table.splitlines()[1:]}
    assert statuses["database"] == "ok"
    assert statuses["entities"] == "ok"
    assert "pending_migrations" in out.decode()
    assert process.returncode == 0, err.decode()
    connection = await asyncpg.connect(fresh_database_dsn)
    try:
        assert await connection.fetchval("SELECT to_regclass($1)", LEDGER_TABLE) is None
    finally:
        await connection.close()
