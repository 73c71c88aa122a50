"""Saves that overlap other work: two indexes on one directory, writes during a save."""

from __future__ import annotations

import asyncio
import os
import resource
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from structlog.testing import capture_logs

from app.vectors import VectorIndex, snapshot
from app.vectors.snapshot_reader import read_snapshot

DIM = 8


async def loaded_namespaces(path: Path) -> dict[str, int]:
    """The namespaces (and their counts) a fresh index loads from ``path``."""
    index = VectorIndex(path, DIM)
    try:
        await index.load()
        return {name: await index.count(name) for name in await index.namespaces()}
    finally:
        await index.close()


# Two indexes on one directory ---------------------------------------------------------


def test_prune_keeps_the_snapshot_a_later_save_switched_to(tmp_path: Path) -> None:
    """prune of an older save keeps what CURRENT names now, and its predecessor."""
    data = {"ns": snapshot.NamespaceData(np.ones((1, DIM), np.float32), ["a"], [None])}
    first = snapshot.write_snapshot(tmp_path, DIM, data)
    second = snapshot.write_snapshot(tmp_path, DIM, data)
    third = snapshot.write_snapshot(tmp_path, DIM, data)
    snapshot.prune(tmp_path, second)  # its own save's prune ran late: CURRENT is `third` now
    names = sorted(path.name for path in tmp_path.glob("snapshot-*"))
    assert names == [second.path.name, third.path.name]
    assert first.path.name not in names


async def test_interleaved_saves_of_two_indexes_leave_current_loadable(tmp_path: Path) -> None:
    """Saves of two VectorIndex on one directory never prune the snapshot CURRENT names."""
    first, second = VectorIndex(tmp_path, DIM, threads=2), VectorIndex(tmp_path, DIM, threads=2)
    try:
        await first.load()
        await second.load()
        for round_ in range(6):
            await first.upsert("ns", f"a{round_}", np.ones(DIM))
            await second.upsert("ns", f"b{round_}", np.ones(DIM))
            await asyncio.gather(first.save(), second.save())
    finally:
        await first.close()
        await second.close()
    assert await loaded_namespaces(tmp_path) == {"ns": 6}


# Writes while save() writes the state ---------------------------------------------------


@pytest.fixture
def paused_copy(monkeypatch: pytest.MonkeyPatch) -> tuple[threading.Event, threading.Event]:
    """Make save()'s first file write signal ``copying`` and wait for ``proceed``: save()
    writes the live rows while it holds every namespace lock (no copy is made)."""
    copying, proceed = threading.Event(), threading.Event()
    original = snapshot._write

    def paused(path: Path, parts: list[bytes | memoryview], fds: list[int]) -> tuple[int, int]:
        if not copying.is_set():
            copying.set()
            assert proceed.wait(timeout=30)
        return original(path, parts, fds)

    monkeypatch.setattr(snapshot, "_write", paused)
    return copying, proceed


async def test_namespaces_created_during_the_copy_are_left_out_of_the_snapshot(
    tmp_path: Path, paused_copy: tuple[threading.Event, threading.Event]
) -> None:
    """New namespaces created while save() writes neither break the save nor enter it."""
    copying, proceed = paused_copy
    index = VectorIndex(tmp_path, DIM, threads=2)
    try:
        await index.load()
        for name in ("one", "two"):
            await index.upsert_arrays(name, ["a", "b"], np.eye(2, DIM))
        saving = asyncio.create_task(index.save())
        assert await asyncio.to_thread(copying.wait, 30)
        for i in range(20):
            await index.upsert(f"new{i}", "x", np.ones(DIM))
        proceed.set()
        await saving
        assert len(await index.namespaces()) == 22
    finally:
        proceed.set()
        await index.close()
    assert await loaded_namespaces(tmp_path) == {"one": 2, "two": 2}


async def test_a_loaded_namespace_is_not_changed_while_save_copies_it(
    tmp_path: Path, paused_copy: tuple[threading.Event, threading.Event]
) -> None:
    """An upsert into a namespace that came from load() waits until save() has written it."""
    copying, proceed = paused_copy
    writer = VectorIndex(tmp_path, DIM)
    try:
        await writer.upsert_arrays("ns", ["a", "b"], np.eye(2, DIM))
        proceed.set()  # this first save is not paused
        await writer.save()
    finally:
        await writer.close()
    copying.clear()
    proceed.clear()
    index = VectorIndex(tmp_path, DIM, threads=2)
    try:
        await index.load()
        saving = asyncio.create_task(index.save())
        assert await asyncio.to_thread(copying.wait, 30)
        upserting = asyncio.create_task(index.upsert("ns", "late", np.ones(DIM)))
        for _ in range(3):
            await asyncio.sleep(0)
        assert not upserting.done()  # it waits for the namespace lock the save holds
        proceed.set()
        await saving
        await upserting
        assert await index.count("ns") == 3
    finally:
        proceed.set()
        await index.close()
    assert await loaded_namespaces(tmp_path) == {"ns": 2}  # the rows as they were at save()


# Many namespaces ----------------------------------------------------------------------


@pytest.fixture
def few_open_files() -> Iterator[int]:
    """Lower this process's open-file limit to 100 above what is open now (restored after)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    headroom = len(os.listdir("/proc/self/fd")) + 100
    resource.setrlimit(resource.RLIMIT_NOFILE, (headroom, hard))
    try:
        yield headroom
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_a_save_of_many_namespaces_keeps_few_files_open(
    tmp_path: Path, few_open_files: int
) -> None:
    """300 namespaces are 600 files: written with 100 free descriptors, then read back."""
    vectors = np.ones((1, DIM), np.float32)
    data = {f"ns-{i}": snapshot.NamespaceData(vectors, [f"id-{i}"], [None]) for i in range(300)}
    written = snapshot.write_snapshot(tmp_path, DIM, data)
    name, stores = read_snapshot(tmp_path, DIM)
    assert name == written.path.name
    assert {namespace: len(store) for namespace, store in stores.items()} == {
        namespace: 1 for namespace in data
    }


async def test_a_failed_cleanup_does_not_stop_the_next_save(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Removing older snapshots failed once: logged, and the next save still writes."""
    real_prune = snapshot.prune
    failures = iter([OSError("EROFS: read-only file system")])

    def prune_failing_once(directory: Path, written: snapshot.Written) -> None:
        failure = next(failures, None)
        if failure is not None:
            raise failure
        real_prune(directory, written)

    monkeypatch.setattr(snapshot, "prune", prune_failing_once)
    index = VectorIndex(tmp_path, DIM)
    try:
        await index.upsert("ns", "a", np.ones(DIM, np.float32))
        await index.save()
        await index.upsert("ns", "b", np.ones(DIM, np.float32))
        with capture_logs() as logs:
            await index.save()
    finally:
        await index.close()
    assert [entry["event"] for entry in logs if entry["log_level"] == "error"] == [
        "vectors.prune_failed"
    ]
    assert await loaded_namespaces(tmp_path) == {"ns": 2}
