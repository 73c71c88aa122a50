"""``python -m app check`` is a read-only probe: it verifies the vector index but never writes."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from app.errors import ReadOnlyIndexError, VectorIndexError
from app.vectors import VectorIndex
from tests.integration.test_cli import app_env

pytestmark = pytest.mark.integration

DIM = 8
CHECK_TIMEOUT_S = 90

Listing = dict[str, tuple[bytes | None, int]]


def listing(directory: Path) -> Listing:
    """Every entry under ``directory``: relative name -> (file contents or None, mtime_ns)."""
    entries: Listing = {".": (None, directory.stat().st_mtime_ns)}
    for path in sorted(directory.rglob("*")):
        contents = path.read_bytes() if path.is_file() else None
        entries[str(path.relative_to(directory))] = (contents, path.stat().st_mtime_ns)
    return entries


async def run_check(tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """``python -m app check`` on ``tmp_path/faiss`` (dimension 8), off the event loop."""
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "app", "check"],
        cwd=tmp_path,
        env=app_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=CHECK_TIMEOUT_S,
        check=False,
    )


def statuses(stdout: str) -> dict[str, str]:
    table = stdout.partition("\n\n")[0]  # details (the entities' lag) follow a blank line
    return {line.split()[0]: line.split()[1] for line in table.splitlines()[1:]}


async def save_some_vectors(path: Path) -> None:
    index = VectorIndex(path, DIM, threads=1)
    try:
        await index.load()
        await index.upsert_arrays(
            "docs", ["a", "b", "c"], np.eye(3, DIM, dtype=np.float32), [{"i": 0}, None, {}]
        )
        await index.save()
    finally:
        await index.close()  # waits for the prune: nothing changes the directory after this


@pytest.fixture
async def running_writer(tmp_path: Path) -> AsyncIterator[VectorIndex]:
    """A saved snapshot, and a writer that has loaded it and holds the directory's lock."""
    await save_some_vectors(tmp_path / "faiss")
    writer = VectorIndex(tmp_path / "faiss", DIM, threads=1)
    await writer.load()
    yield writer
    await writer.close()


async def test_check_beside_a_running_writer_reports_vectors_ready(
    tmp_path: Path, running_writer: VectorIndex
) -> None:
    """check succeeds and reports vectors ok while another process holds the writer lock."""
    assert await running_writer.count("docs") == 3
    result = await run_check(tmp_path)
    assert result.returncode == 0, result.stderr
    assert "IndexLockedError" not in result.stderr
    assert statuses(result.stdout)["vectors"] == "ok"


async def test_check_beside_a_running_writer_leaves_the_directory_unchanged(
    tmp_path: Path, running_writer: VectorIndex
) -> None:
    """Beside a writer, check changes no file, name or mtime in the index directory."""
    before = listing(tmp_path / "faiss")
    result = await run_check(tmp_path)
    assert result.returncode == 0, result.stderr
    assert listing(tmp_path / "faiss") == before


async def test_standalone_check_writes_no_snapshot(tmp_path: Path) -> None:
    """Without a server, check neither writes a snapshot nor touches any file of the index."""
    await save_some_vectors(tmp_path / "faiss")
    before = listing(tmp_path / "faiss")
    for _ in range(2):
        result = await run_check(tmp_path)
        assert result.returncode == 0, result.stderr
        assert statuses(result.stdout)["vectors"] == "ok"
    assert listing(tmp_path / "faiss") == before


async def test_check_of_a_missing_index_directory_creates_nothing(tmp_path: Path) -> None:
    """check on an index directory that does not exist reports ok and does not create it."""
    result = await run_check(tmp_path)
    assert result.returncode == 0, result.stderr
    assert statuses(result.stdout)["vectors"] == "ok"
    assert not (tmp_path / "faiss").exists()


async def test_check_still_reports_a_corrupt_snapshot(tmp_path: Path) -> None:
    """A snapshot whose vectors fail their checksum makes check exit non-zero, naming it."""
    await save_some_vectors(tmp_path / "faiss")
    (vectors,) = (tmp_path / "faiss").glob("snapshot-*/docs*.npy")
    damaged = bytearray(vectors.read_bytes())
    damaged[-1] ^= 0xFF  # same size and header, different contents: only the checksum can tell
    vectors.write_bytes(bytes(damaged))
    before = listing(tmp_path / "faiss")
    result = await run_check(tmp_path)
    assert result.returncode != 0
    assert "vectors failed to start" in result.stderr
    assert "SnapshotCorruptError" in result.stderr
    assert "xxh3_128 does not match" in result.stderr
    assert listing(tmp_path / "faiss") == before


async def test_writes_on_a_read_only_index_raise_the_typed_error(tmp_path: Path) -> None:
    """Every write method of a read-only index raises ReadOnlyIndexError and changes nothing."""
    await save_some_vectors(tmp_path / "faiss")
    before = listing(tmp_path / "faiss")
    index = VectorIndex(tmp_path / "faiss", DIM, threads=1, read_only=True)
    try:
        await index.load()
        await index.ping()
        writes = {
            "upsert": lambda: index.upsert("docs", "d", np.ones(DIM)),
            "upsert_many": lambda: index.upsert_many("docs", [("d", np.ones(DIM))]),
            "upsert_arrays": lambda: index.upsert_arrays("docs", ["d"], np.ones((1, DIM))),
            "delete": lambda: index.delete("docs", "a"),
            "delete_many": lambda: index.delete_many("docs", ["a"]),
            "save": index.save,
        }
        for name, write in writes.items():
            with pytest.raises(ReadOnlyIndexError, match=rf"{name}\(\).*read_only=True"):
                await write()
        with pytest.raises(ReadOnlyIndexError, match="read_only=True"):
            index.start_autosave(1.0)
        assert issubclass(ReadOnlyIndexError, VectorIndexError)
        assert await index.count("docs") == 3
        assert await index.namespaces() == ["docs"]
    finally:
        await index.close()
    assert listing(tmp_path / "faiss") == before
