"""V6 on disk: a save killed at any step leaves a loadable snapshot; damage is never skipped.

The crash cases run a child process that loads the index, changes it, sets
``snapshot.after_write_hook`` to SIGKILL itself at one step of ``save()``, and saves.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from app.errors import SnapshotCorruptError
from app.vectors import VectorIndex

DIM = 16
ROOT = Path(__file__).resolve().parents[2]

CHILD = textwrap.dedent(
    """
    import asyncio, os, signal, sys
    import numpy as np
    from app.vectors import VectorIndex, snapshot

    path, step, mode = sys.argv[1], sys.argv[2], sys.argv[3]

    def hook(label: str) -> None:
        if label == step:
            os.kill(os.getpid(), signal.SIGKILL)

    async def main() -> None:
        index = VectorIndex(path, {dim})
        await index.load()
        if mode == "hold":
            print("locked", flush=True)
            sys.stdin.readline()
            return
        rng = np.random.default_rng(99)
        new_ids = [f"new{{i}}" for i in range(30)]
        await index.upsert_arrays("alpha", new_ids, rng.standard_normal((30, {dim})))
        await index.delete("alpha", "a0")
        await index.upsert("gamma", "g", np.ones({dim}), {{"new": True}})
        snapshot.after_write_hook = hook
        await index.save()
        await index.close()

    asyncio.run(main())
    """
).format(dim=DIM)


def snapshot_dirs(path: Path) -> list[Path]:
    return sorted(path.glob("snapshot-*"))


def run_child(path: Path, step: str, mode: str = "crash") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", CHILD, str(path), step, mode],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def write_first_snapshot(path: Path) -> dict[str, list[str]]:
    """Save a known first snapshot (namespaces alpha, beta) and return its ids."""
    rng = np.random.default_rng(1)
    index = VectorIndex(path, DIM)
    try:
        await index.load()
        await index.upsert_arrays(
            "alpha",
            [f"a{i}" for i in range(20)],
            rng.standard_normal((20, DIM)),
            [{"i": i} for i in range(20)],
        )
        await index.upsert_arrays("beta", ["b0", "b1"], rng.standard_normal((2, DIM)))
        await index.save()
    finally:
        await index.close()
    return {"alpha": [f"a{i}" for i in range(20)], "beta": ["b0", "b1"]}


async def contents(path: Path) -> dict[str, set[str]]:
    index = VectorIndex(path, DIM)
    try:
        await index.load()
        result = {}
        for namespace in await index.namespaces():
            probe = np.ones(DIM)
            matches = await index.query(namespace, probe, top_k=1000)
            assert len(matches) == await index.count(namespace)
            result[namespace] = {m.id for m in matches}
        return result
    finally:
        await index.close()


@pytest.mark.parametrize(
    "step",
    [
        "wrote:alpha.npy",
        "wrote:alpha.json",
        "wrote:gamma.npy",
        "synced",
        "manifest",
        "wrote:CURRENT.tmp",
    ],
)
async def test_crash_during_save_leaves_the_previous_snapshot(tmp_path: Path, step: str) -> None:
    """A save killed before the pointer switch leaves the previous snapshot, content intact."""
    first = await write_first_snapshot(tmp_path)
    result = await asyncio.to_thread(run_child, tmp_path, step)
    assert result.returncode == -signal.SIGKILL, result.stderr
    assert await contents(tmp_path) == {name: set(ids) for name, ids in first.items()}


@pytest.mark.parametrize("step", ["wrote:CURRENT.tmp", "wrote:alpha.npy", "synced", "manifest"])
async def test_crash_during_the_first_save_leaves_an_empty_index(tmp_path: Path, step: str) -> None:
    """The very first save killed before its switch leaves an index that loads empty."""
    result = await asyncio.to_thread(run_child, tmp_path, step)
    assert result.returncode == -signal.SIGKILL, result.stderr
    assert await contents(tmp_path) == {}
    await write_first_snapshot(tmp_path)  # and the next save goes on from there
    assert len(snapshot_dirs(tmp_path)) == 1


async def test_missing_pointer_beside_snapshots_is_an_error_not_an_empty_index(
    tmp_path: Path,
) -> None:
    """Without CURRENT but with snapshots, load() and save() raise and delete nothing."""
    await write_first_snapshot(tmp_path)
    await write_first_snapshot(tmp_path)
    (tmp_path / "CURRENT").unlink()
    before = snapshot_dirs(tmp_path)
    index = VectorIndex(tmp_path, DIM)
    try:
        missing = "CURRENT is missing while 2 snapshot directories exist"
        with pytest.raises(SnapshotCorruptError, match=missing) as info:
            await index.load()
        assert info.value.path == str(tmp_path)
        await index.upsert("keep", "k", np.ones(DIM))
        with pytest.raises(SnapshotCorruptError, match="CURRENT is missing"):
            await index.save()
    finally:
        await index.close()
    assert snapshot_dirs(tmp_path) == before
    assert not (tmp_path / "CURRENT").exists()


async def test_crash_right_after_the_switch_keeps_the_new_snapshot(tmp_path: Path) -> None:
    """A save killed just after the atomic switch has its new snapshot loaded, complete."""
    first = await write_first_snapshot(tmp_path)
    result = await asyncio.to_thread(run_child, tmp_path, "switched")
    assert result.returncode == -signal.SIGKILL, result.stderr
    expected = {
        "alpha": (set(first["alpha"]) - {"a0"}) | {f"new{i}" for i in range(30)},
        "beta": set(first["beta"]),
        "gamma": {"g"},
    }
    assert await contents(tmp_path) == expected


async def test_next_save_after_a_crash_cleans_up_leftovers(tmp_path: Path) -> None:
    """Snapshot directories left by a crashed save are removed by the next successful save."""
    await write_first_snapshot(tmp_path)
    crashed = await asyncio.to_thread(run_child, tmp_path, "manifest")
    assert crashed.returncode == -signal.SIGKILL
    assert len(snapshot_dirs(tmp_path)) == 2
    index = VectorIndex(tmp_path, DIM)
    try:
        await index.load()
        await index.save()
        await index.save()
    finally:
        await index.close()
    assert len(snapshot_dirs(tmp_path)) == 2
    assert not await asyncio.to_thread((tmp_path / "CURRENT.tmp").exists)


def test_second_writer_process_gets_index_locked_error(tmp_path: Path) -> None:
    """While one process holds the directory, another process's load() raises IndexLockedError."""
    holder = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tmp_path), "-", "hold"],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        lines = iter(holder.stdout.readline, "")
        assert any(line.strip() == "locked" for line in lines)
        second = run_child(tmp_path, "-", "hold")
        assert second.returncode != 0
        assert "IndexLockedError" in second.stderr
        assert f"pid {holder.pid}" in second.stderr
    finally:
        assert holder.stdin is not None
        holder.stdin.write("\n")
        holder.stdin.close()
        holder.wait(timeout=30)
        assert holder.stderr is not None
        assert holder.stdout is not None
        holder.stderr.close()
        holder.stdout.close()
    assert holder.returncode == 0


async def test_lock_is_free_again_after_close(tmp_path: Path) -> None:
    """After close() another process can take the directory."""
    index = VectorIndex(tmp_path, DIM)
    await index.load()
    await index.close()
    holder = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", CHILD, str(tmp_path), "-", "hold"],
        cwd=ROOT,
        input="\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert holder.returncode == 0, holder.stderr
    assert "locked" in holder.stdout.splitlines()


# -- corruption -------------------------------------------------------------------------


@pytest.fixture
async def saved(tmp_path: Path) -> Path:
    """A directory with one saved snapshot; returns the snapshot folder."""
    await write_first_snapshot(tmp_path)
    [folder] = snapshot_dirs(tmp_path)
    return folder


def truncate_npy(folder: Path) -> None:
    path = folder / "alpha.npy"
    path.write_bytes(path.read_bytes()[:-7])


def flip_npy_byte(folder: Path) -> None:
    path = folder / "alpha.npy"
    data = bytearray(path.read_bytes())
    data[-5] ^= 0x40
    path.write_bytes(bytes(data))


def edit_records(folder: Path) -> None:
    path = folder / "alpha.json"
    path.write_text(path.read_text().replace('"a3"', '"zz"'))


def edit_manifest_count(folder: Path) -> None:
    path = folder / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["namespaces"]["alpha"]["count"] = 19
    path.write_text(json.dumps(manifest))


def edit_manifest_hash(folder: Path) -> None:
    path = folder / "manifest.json"
    text = path.read_text()
    manifest = json.loads(text)
    manifest["namespaces"]["beta"]["records"]["xxh3_128"] = "0" * 32
    path.write_text(json.dumps(manifest))


def delete_file(folder: Path) -> None:
    (folder / "beta.npy").unlink()


def garbage_pointer(folder: Path) -> None:
    (folder.parent / "CURRENT").write_text("{not json")


def dangling_pointer(folder: Path) -> None:
    pointer = json.loads((folder.parent / "CURRENT").read_text())
    pointer["snapshot"] = "snapshot-000000000099-deadbeef"
    (folder.parent / "CURRENT").write_text(json.dumps(pointer))


def traversal_pointer(folder: Path) -> None:
    pointer = json.loads((folder.parent / "CURRENT").read_text())
    pointer["snapshot"] = "../elsewhere"
    (folder.parent / "CURRENT").write_text(json.dumps(pointer))


def pickle_npy(folder: Path) -> None:
    """Replace the vectors with an object array (pickle inside) of a matching size claim."""
    path = folder / "alpha.npy"
    np.save(path, np.array([{"x": 1}], dtype=object), allow_pickle=True)


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (truncate_npy, "size"),
        (flip_npy_byte, "xxh3_128 does not match"),
        (edit_records, "xxh3_128 does not match"),
        (edit_manifest_count, "manifest sha256 does not match the pointer"),
        (edit_manifest_hash, "manifest sha256 does not match the pointer"),
        (delete_file, "missing"),
        (garbage_pointer, "not valid JSON"),
        (dangling_pointer, "manifest is missing"),
        (traversal_pointer, "unexpected form"),
        (pickle_npy, "size"),
    ],
)
async def test_damaged_snapshot_raises_snapshot_corrupt_error(
    saved: Path, damage: object, reason: str
) -> None:
    """Each kind of damage raises SnapshotCorruptError with path and reason; nothing is replaced."""
    index = VectorIndex(saved.parent, DIM)
    try:
        await index.upsert("keep", "k", np.ones(DIM))
        damage(saved)  # type: ignore[operator]
        with pytest.raises(SnapshotCorruptError, match=reason) as info:
            await index.load()
        assert str(saved.parent) in info.value.path
        assert info.value.path in str(info.value)
        assert await index.namespaces() == ["keep"]
    finally:
        await index.close()


async def test_edited_records_with_a_recomputed_hash_is_still_caught(saved: Path) -> None:
    """Fixing the records checksum in the manifest breaks the manifest hash held by the pointer."""
    import xxhash

    edit_records(saved)
    manifest = json.loads((saved / "manifest.json").read_text())
    data = (saved / "alpha.json").read_bytes()
    manifest["namespaces"]["alpha"]["records"]["xxh3_128"] = xxhash.xxh3_128(data).hexdigest()
    (saved / "manifest.json").write_text(json.dumps(manifest))
    index = VectorIndex(saved.parent, DIM)
    try:
        with pytest.raises(SnapshotCorruptError, match="manifest sha256"):
            await index.load()
    finally:
        await index.close()


async def test_snapshot_of_another_dimension_is_rejected(saved: Path) -> None:
    """Loading with a different configured dimension raises SnapshotCorruptError naming both."""
    index = VectorIndex(saved.parent, DIM * 2)
    try:
        with pytest.raises(
            SnapshotCorruptError, match=f"dimension {DIM}, the index is configured with {DIM * 2}"
        ):
            await index.load()
    finally:
        await index.close()
