"""Snapshots of big namespaces in several vector files (shards), and format version 1."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app.errors import SnapshotCorruptError
from app.vectors import VectorIndex, snapshot

DIM = 16
COUNT = 100


@pytest.fixture
def three_shards(monkeypatch: pytest.MonkeyPatch) -> None:
    """Shard a namespace of COUNT x DIM floats (6400 bytes) into three vector files."""
    monkeypatch.setattr(snapshot, "SHARD_MIN_BYTES", 256)
    monkeypatch.setattr(snapshot, "SHARDS_MAX", 3)


async def save_alpha(path: Path) -> dict[str, tuple[list[float], Any]]:
    """Save COUNT vectors (metadata on every other one) in 'alpha'; return them by id."""
    vectors = np.random.default_rng(5).standard_normal((COUNT, DIM)).astype(np.float32)
    ids = [f"a{i}" for i in range(COUNT)]
    metadata = [{"i": i} if i % 2 else None for i in range(COUNT)]
    index = VectorIndex(path, DIM)
    try:
        await index.upsert_arrays("alpha", ids, vectors, metadata)
        await index.delete("alpha", "a3")  # the last row moves: files hold the live order
        await index.save()
        return await records(index)
    finally:
        await index.close()


async def records(index: VectorIndex) -> dict[str, tuple[list[float], Any]]:
    found = await index.get("alpha", [f"a{i}" for i in range(COUNT)])
    return {r.id: (np.asarray(r.vector).tolist(), r.metadata) for r in found}


async def load_alpha(path: Path) -> dict[str, tuple[list[float], Any]]:
    index = VectorIndex(path, DIM)
    try:
        await index.load()
        return await records(index)
    finally:
        await index.close()


def snapshot_folder(path: Path) -> Path:
    name: str = json.loads((path / "CURRENT").read_text())["snapshot"]
    return path / name


def rewrite_manifest(path: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    """Change the manifest and sign it in the pointer again, as a save would have."""
    folder = snapshot_folder(path)
    manifest = json.loads((folder / "manifest.json").read_text())
    edit(manifest)
    raw = json.dumps(manifest).encode()
    (folder / "manifest.json").write_bytes(raw)
    pointer = {"snapshot": folder.name, "manifest_sha256": hashlib.sha256(raw).hexdigest()}
    (path / "CURRENT").write_text(json.dumps(pointer))


@pytest.mark.usefixtures("three_shards")
async def test_a_big_namespace_is_saved_in_shards_and_loads_back_exactly(tmp_path: Path) -> None:
    """A namespace above the shard size is written as several files and loads back bit for bit."""
    saved = await save_alpha(tmp_path)
    folder = snapshot_folder(tmp_path)
    assert sorted(p.name for p in folder.glob("alpha*.npy")) == [
        "alpha.0.npy",
        "alpha.1.npy",
        "alpha.2.npy",
    ]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["version"] == snapshot.FORMAT_VERSION
    assert [spec["rows"] for spec in manifest["namespaces"]["alpha"]["vectors"]] == [33, 33, 33]
    shards = [np.load(folder / f"alpha.{i}.npy", allow_pickle=False) for i in range(3)]
    assert np.concatenate(shards).shape == (COUNT - 1, DIM)
    assert await load_alpha(tmp_path) == saved
    assert len(saved) == COUNT - 1


@pytest.mark.usefixtures("three_shards")
async def test_a_damaged_shard_is_named_in_the_error(tmp_path: Path) -> None:
    """A corrupted shard file fails the load with SnapshotCorruptError naming that file."""
    await save_alpha(tmp_path)
    path = snapshot_folder(tmp_path) / "alpha.1.npy"
    data = bytearray(path.read_bytes())
    data[-5] ^= 0x40
    path.write_bytes(bytes(data))
    with pytest.raises(SnapshotCorruptError, match="sha256 does not match") as caught:
        await load_alpha(tmp_path)
    assert caught.value.path == str(path)


@pytest.mark.usefixtures("three_shards")
@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (lambda spec: spec[1].update(rows=34), "hold 100 rows, manifest count 99"),
        (lambda spec: spec[1].update(rows="33"), "bad rows for vector file 1"),
        (lambda spec: spec.pop(), "hold 66 rows, manifest count 99"),
        (lambda spec: spec.reverse(), "bad file entry for alpha.0.npy"),
        (lambda spec: spec.clear(), "non-empty list"),
    ],
)
async def test_shard_entries_must_match_the_count_and_the_files(
    tmp_path: Path, edit: Callable[[list[dict[str, Any]]], None], reason: str
) -> None:
    """Shard entries whose rows or files disagree with the manifest's count are refused."""
    await save_alpha(tmp_path)
    rewrite_manifest(tmp_path, lambda m: edit(m["namespaces"]["alpha"]["vectors"]))
    with pytest.raises(SnapshotCorruptError, match=reason):
        await load_alpha(tmp_path)


async def test_a_format_version_1_snapshot_still_loads(tmp_path: Path) -> None:
    """Version 1: one '<namespace>.npy' described by a single entry without rows."""
    saved = await save_alpha(tmp_path)

    def as_version_1(manifest: dict[str, Any]) -> None:
        manifest["version"] = 1
        [spec] = manifest["namespaces"]["alpha"]["vectors"]
        del spec["rows"]
        manifest["namespaces"]["alpha"]["vectors"] = spec

    rewrite_manifest(tmp_path, as_version_1)
    assert await load_alpha(tmp_path) == saved


async def test_an_unknown_format_version_is_refused(tmp_path: Path) -> None:
    """A manifest of a format version this code does not know is refused, not guessed at."""
    await save_alpha(tmp_path)
    rewrite_manifest(tmp_path, lambda m: m.update(version=snapshot.FORMAT_VERSION + 1))
    with pytest.raises(SnapshotCorruptError, match="format version 3, this code reads"):
        await load_alpha(tmp_path)


@pytest.mark.usefixtures("three_shards")
def test_copy_matrix_copies_every_shard() -> None:
    """copy_matrix returns an independent copy of every row, across shard boundaries."""
    source = np.arange(COUNT * DIM, dtype=np.float32).reshape(COUNT, DIM)
    copy = snapshot.copy_matrix(source)
    assert copy is not source
    assert not np.shares_memory(copy, source)
    np.testing.assert_array_equal(copy, source)


@pytest.mark.parametrize(("count", "shards"), [(1, 1), (2, 2), (5, 3), (100, 3)])
def test_shard_rows_cover_every_row_once(
    monkeypatch: pytest.MonkeyPatch, count: int, shards: int
) -> None:
    """The shard ranges cover every row exactly once, in order."""
    monkeypatch.setattr(snapshot, "SHARD_MIN_BYTES", 4)
    monkeypatch.setattr(snapshot, "SHARDS_MAX", 3)
    ranges = snapshot.shard_rows(count, 1)
    assert len(ranges) == shards
    assert [start for start, _ in ranges] == [0] + [stop for _, stop in ranges[:-1]]
    assert ranges[-1][1] == count
    assert all(stop > start for start, stop in ranges)
