"""V1-V8 of docs/contracts/vectors.md for VectorIndex; V8's model check: test_vectors_model.py."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
from structlog.testing import capture_logs

import app.vectors.index as index_module
from app.errors import DimensionMismatchError, InvalidIdentifierError, InvalidVectorError
from app.vectors import VectorIndex, VectorMatch, VectorRecord

DIM = 8


@pytest.fixture(params=["inline", "pool"])
async def index(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[VectorIndex]:
    """A fresh index; 'pool' sends every operation through the thread pool (queries batched)."""
    if request.param == "pool":
        monkeypatch.setattr(index_module, "INLINE_MAX_CELLS", 0)
        monkeypatch.setattr(index_module, "BATCH_MIN_CELLS", 0)
    vectors = VectorIndex(tmp_path / "index", DIM, threads=2)
    yield vectors
    await vectors.close()


def unit(vector: np.ndarray) -> np.ndarray:
    result: np.ndarray = vector / np.linalg.norm(vector)
    return result


# V1 ---------------------------------------------------------------------------------------


async def test_v1_scores_are_cosine_similarities_in_descending_order(index: VectorIndex) -> None:
    """score is the cosine similarity of query and stored vector; results are best first."""
    rng = np.random.default_rng(1)
    data = rng.standard_normal((30, DIM)) * rng.uniform(0.1, 50, (30, 1))
    await index.upsert_arrays("ns", [f"v{i}" for i in range(30)], data)
    query = rng.standard_normal(DIM) * 7
    matches = await index.query("ns", query, top_k=30)
    expected = {f"v{i}": float(unit(data[i]) @ unit(query)) for i in range(30)}
    assert [m.score for m in matches] == sorted((m.score for m in matches), reverse=True)
    for match in matches:
        assert match.score == pytest.approx(expected[match.id], abs=1e-5)
    assert matches[0].id == max(expected, key=lambda k: expected[k])


async def test_v1_stored_vectors_are_normalised_copies(index: VectorIndex) -> None:
    """get returns a unit-norm copy; changing the caller's array afterwards changes nothing."""
    vector = np.arange(1, DIM + 1, dtype=np.float32)
    await index.upsert("ns", "a", vector)
    vector[:] = 0
    [record] = await index.get("ns", ["a"])
    assert isinstance(record, VectorRecord)
    stored = np.asarray(record.vector)
    assert np.linalg.norm(stored) == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(stored, unit(np.arange(1, DIM + 1)), rtol=1e-6)


async def test_v1_a_match_is_frozen_and_its_metadata_a_copy(index: VectorIndex) -> None:
    """VectorMatch is frozen, and mutating returned metadata does not change the index."""
    metadata = {"tags": ["x"]}
    await index.upsert("ns", "a", np.ones(DIM), metadata)
    metadata["tags"].append("changed-after-upsert")
    [match] = await index.query("ns", np.ones(DIM))
    assert (match.id, match.metadata) == ("a", {"tags": ["x"]})
    assert match.score == pytest.approx(1.0)
    assert isinstance(match, VectorMatch)
    with pytest.raises(AttributeError):
        match.score = 0.0  # type: ignore[misc]
    assert match.metadata is not None
    match.metadata["tags"].append("y")
    [again] = await index.query("ns", np.ones(DIM))
    assert again.metadata == {"tags": ["x"]}


async def test_v1_equal_scores_are_ordered_by_id_whatever_the_kernel(index: VectorIndex) -> None:
    """Identical vectors: repeated, concurrent and post-delete queries give the smallest ids."""
    rng = np.random.default_rng(21)
    ids = [f"id{i:02d}" for i in range(50)]
    shuffled = [ids[i] for i in rng.permutation(50)]  # row order is not id order
    await index.upsert_arrays("ns", shuffled, np.tile(rng.standard_normal(DIM), (50, 1)))
    queries = rng.standard_normal((60, DIM))
    # 60 queries: the kernel chooser runs each kernel for a while before choosing.
    for query in queries:
        assert [m.id for m in await index.query("ns", query, 3)] == ids[:3]
    together = await asyncio.gather(*(index.query("ns", q, 3) for q in queries[:9]))
    assert [[m.id for m in matches] for matches in together] == [ids[:3]] * 9
    gone = {"id00", "id02", shuffled[-1], shuffled[0]}
    assert await index.delete_many("ns", gone) == len(gone)
    remaining = sorted(set(ids) - gone)
    for query in queries[:20]:
        assert [m.id for m in await index.query("ns", query, 3)] == remaining[:3]
    matches = await index.query("ns", queries[0], 50)
    assert [m.id for m in matches] == remaining
    assert len({m.score for m in matches}) == 1


# V2 ---------------------------------------------------------------------------------------


async def test_v2_upsert_of_existing_id_replaces_in_place(index: VectorIndex) -> None:
    """Re-upserting replaces vector and metadata, keeps the count and the row storage."""
    rng = np.random.default_rng(2)
    await index.upsert_arrays("ns", [f"v{i}" for i in range(20)], rng.standard_normal((20, DIM)))
    matrix = index._stores["ns"]._matrix
    new = rng.standard_normal(DIM)
    await index.upsert("ns", "v7", new, {"v": 2})
    assert await index.count("ns") == 20
    assert index._stores["ns"]._matrix is matrix
    [record] = await index.get("ns", ["v7"])
    np.testing.assert_allclose(np.asarray(record.vector), unit(new), rtol=1e-5, atol=1e-6)
    assert record.metadata == {"v": 2}
    [top] = await index.query("ns", new, top_k=1)
    assert top.id == "v7"


async def test_v2_delete_is_a_row_move_not_a_rebuild(index: VectorIndex) -> None:
    """delete frees one row by moving the last one; storage is not rebuilt; results stay right."""
    rng = np.random.default_rng(3)
    data = rng.standard_normal((50, DIM))
    await index.upsert_arrays("ns", [f"v{i}" for i in range(50)], data)
    matrix = index._stores["ns"]._matrix
    assert await index.delete("ns", "v3") is True
    assert await index.delete("ns", "v3") is False
    assert await index.delete("other", "v3") is False
    assert index._stores["ns"]._matrix is matrix
    assert await index.count("ns") == 49
    [top] = await index.query("ns", data[49], top_k=1)
    assert top.id == "v49"
    assert top.score == pytest.approx(1.0, abs=1e-5)
    assert await index.get("ns", ["v3"]) == []


async def test_v2_delete_many_counts_removed_ids(index: VectorIndex) -> None:
    """delete_many returns how many of the listed ids existed."""
    await index.upsert_many("ns", [(f"v{i}", np.ones(DIM) + i) for i in range(5)])
    assert await index.delete_many("ns", ["v0", "v1", "nope", "v1"]) == 2
    assert await index.count("ns") == 3


# V3 ---------------------------------------------------------------------------------------


async def test_v3_rejected_batch_changes_nothing(index: VectorIndex) -> None:
    """A batch with one bad row (dimension, NaN, zero, id, metadata) changes nothing at all."""
    await index.upsert("ns", "keep", np.ones(DIM), {"k": 1})
    good = [("a", np.ones(DIM), None), ("keep", -np.ones(DIM), {"k": 2})]
    bad_rows = [
        (("b", np.ones(DIM - 1), None), DimensionMismatchError),
        (("b", np.full(DIM, np.nan), None), InvalidVectorError),
        (("b", np.zeros(DIM), None), InvalidVectorError),
        (("", np.ones(DIM), None), InvalidIdentifierError),
        (("b", np.ones(DIM), {"x": object()}), InvalidIdentifierError),
    ]
    for bad, error in bad_rows:
        with pytest.raises(error):
            await index.upsert_many("ns", [*good, bad])
        with pytest.raises(error):
            await index.upsert_many("ns", [bad, *good])
    assert await index.count("ns") == 1
    [record] = await index.get("ns", ["keep"])
    assert record.metadata == {"k": 1}
    assert await index.namespaces() == ["ns"]


async def test_v3_dimension_error_says_expected_and_got(index: VectorIndex) -> None:
    """DimensionMismatchError carries expected and got."""
    with pytest.raises(DimensionMismatchError) as info:
        await index.upsert_arrays("ns", ["a"], np.ones((1, DIM + 3)))
    assert (info.value.expected, info.value.got) == (DIM, DIM + 3)


# V4 ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("top_k", [1, 4, 10, 11, 50])
async def test_v4_returns_min_of_top_k_and_matches(index: VectorIndex, top_k: int) -> None:
    """query returns min(top_k, count) results."""
    rng = np.random.default_rng(4)
    await index.upsert_arrays("ns", [f"v{i}" for i in range(10)], rng.standard_normal((10, DIM)))
    assert len(await index.query("ns", rng.standard_normal(DIM), top_k)) == min(top_k, 10)
    assert await index.query("empty", rng.standard_normal(DIM), top_k) == []


async def test_v4_filter_applies_before_ranking(index: VectorIndex) -> None:
    """The best matches overall fail the filter; the filtered query still fills top_k."""
    rng = np.random.default_rng(5)
    query = unit(rng.standard_normal(DIM))
    near = [query + 0.01 * rng.standard_normal(DIM) for _ in range(40)]
    far = [-query + 0.5 * rng.standard_normal(DIM) for _ in range(6)]
    items: list[tuple[str, np.ndarray, dict[str, object]]]
    items = [(f"near{i}", v, {"kind": "near"}) for i, v in enumerate(near)]
    items += [(f"far{i}", v, {"kind": "far", "n": i}) for i, v in enumerate(far)]
    await index.upsert_many("ns", items)
    matches = await index.query("ns", query, top_k=4, filter={"kind": "far"})
    assert len(matches) == 4
    assert all(m.id.startswith("far") for m in matches)
    assert [m.score for m in matches] == sorted((m.score for m in matches), reverse=True)
    everything = await index.query("ns", query, top_k=10, filter={"kind": {"$in": ["far"]}})
    assert {m.id for m in everything} == {f"far{i}" for i in range(6)}
    some = await index.query("ns", query, top_k=10, filter={"kind": "far", "n": {"$in": [1, 4]}})
    assert {m.id for m in some} == {"far1", "far4"}
    assert await index.query("ns", query, filter={"kind": "none"}) == []


# V5 ---------------------------------------------------------------------------------------


async def test_v5_namespaces_are_isolated(index: VectorIndex) -> None:
    """The same id in two namespaces is two vectors; deletes and queries stay in their namespace."""
    await index.upsert("one", "x", np.eye(DIM)[0], {"ns": 1})
    await index.upsert("two", "x", np.eye(DIM)[1], {"ns": 2})
    [a] = await index.query("one", np.eye(DIM)[1])
    assert (a.id, a.metadata) == ("x", {"ns": 1})
    assert a.score == pytest.approx(0.0, abs=1e-6)
    assert await index.delete("one", "x") is True
    assert await index.count("one") == 0
    assert await index.count("two") == 1
    assert await index.namespaces() == ["two"]


@pytest.mark.parametrize("name", ["a", "0", "a-b_c", "x" * 64, "9lives"])
async def test_v5_valid_namespace_names(index: VectorIndex, name: str) -> None:
    """Names of the form [a-z0-9][a-z0-9_-]{0,63} are accepted and listed."""
    await index.upsert(name, "id", np.ones(DIM))
    assert await index.namespaces() == [name]


# V6 (the crash and corruption cases are in tests/integration/test_vectors_crash.py) -------


async def test_v6_save_then_load_in_a_second_index_of_the_same_process(
    index: VectorIndex, tmp_path: Path
) -> None:
    """A second VectorIndex on the same directory loads exactly what the first saved."""
    rng = np.random.default_rng(6)
    data = rng.standard_normal((25, DIM))
    await index.upsert_arrays(
        "ns", [f"v{i}" for i in range(25)], data, [{"i": i} for i in range(25)]
    )
    await index.upsert("other", "ü-ñ", np.ones(DIM), {"nested": {"list": [1, None, "x"]}})
    await index.delete("ns", "v0")
    await index.save()
    second = VectorIndex(tmp_path / "index", DIM)
    try:
        await second.load()
        await second.ping()
        assert await second.namespaces() == ["ns", "other"]
        assert await second.count("ns") == 24
        for probe in (data[5], data[24], rng.standard_normal(DIM)):
            assert await second.query("ns", probe, 5) == await index.query("ns", probe, 5)
        [record] = await second.get("other", ["ü-ñ"])
        assert record.metadata == {"nested": {"list": [1, None, "x"]}}
    finally:
        await second.close()


async def test_v6_load_of_missing_directory_is_empty(tmp_path: Path) -> None:
    """load() on a directory that does not exist gives an empty, loaded index."""
    index = VectorIndex(tmp_path / "does" / "not" / "exist", DIM)
    try:
        await index.load()
        await index.ping()
        assert await index.namespaces() == []
    finally:
        await index.close()


async def test_v6_previous_snapshot_is_kept_and_older_ones_pruned(
    index: VectorIndex, tmp_path: Path
) -> None:
    """After several saves exactly the current and the previous snapshot remain."""
    folder = tmp_path / "index"
    names: list[str] = []
    for i in range(4):
        await index.upsert("ns", f"v{i}", np.ones(DIM) + i)
        await index.save()
        names.append(json.loads((folder / "CURRENT").read_text())["snapshot"])
    await index.close()
    assert sorted(p.name for p in folder.glob("snapshot-*")) == names[-2:]


async def test_v6_vectors_file_loads_without_pickle(index: VectorIndex, tmp_path: Path) -> None:
    """The vectors file is a plain float32 .npy that np.load reads with allow_pickle=False."""
    await index.upsert_arrays("ns", ["a", "b"], np.eye(DIM)[:2] * 3)
    await index.save()
    [npy] = (tmp_path / "index").glob("snapshot-*/ns.npy")
    array = np.load(npy, allow_pickle=False)
    assert array.dtype == np.dtype("<f4")
    np.testing.assert_allclose(array, np.eye(DIM)[:2])


# V7 ---------------------------------------------------------------------------------------


async def test_v7_queries_during_upserts_never_see_half_a_batch(index: VectorIndex) -> None:
    """Concurrent queries see every row of a namespace from the same batch, never a mix."""
    ids = [f"v{i}" for i in range(64)]
    rng = np.random.default_rng(7)
    await index.upsert_arrays("ns", ids, rng.standard_normal((64, DIM)), [{"gen": 0}] * 64)
    generations = 30
    seen: list[set[int]] = []

    async def writer() -> None:
        for gen in range(1, generations + 1):
            batch = rng.standard_normal((64, DIM))
            await index.upsert_arrays("ns", ids, batch, [{"gen": gen}] * 64)
            await asyncio.sleep(0)

    async def reader() -> None:
        for _ in range(generations):
            matches = await index.query("ns", rng.standard_normal(DIM), top_k=64)
            assert len(matches) == 64
            seen.append({m.metadata["gen"] for m in matches if m.metadata is not None})
            await asyncio.sleep(0)

    await asyncio.gather(writer(), *(reader() for _ in range(4)))
    assert all(len(gens) == 1 for gens in seen)
    assert len({next(iter(gens)) for gens in seen}) > 1
    matches = await index.query("ns", np.ones(DIM), top_k=64)
    assert {m.metadata["gen"] for m in matches if m.metadata} == {generations}


async def test_v7_blocking_work_runs_on_the_pool_threads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Work above INLINE_MAX_CELLS runs on a 'vectors' worker thread, not the event loop."""
    import threading

    from app.vectors import store as store_module

    monkeypatch.setattr(index_module, "INLINE_MAX_CELLS", 0)
    monkeypatch.setattr(index_module, "BATCH_MIN_CELLS", 0)
    threads: dict[str, str] = {}

    def spying(name: str) -> object:
        original = getattr(store_module.NamespaceStore, name)

        def spy(self: store_module.NamespaceStore, *args: object) -> object:
            threads[name] = threading.current_thread().name
            return original(self, *args)

        return spy

    for name in ("search", "rank_many"):  # filtered queries, and batches of unfiltered ones
        monkeypatch.setattr(store_module.NamespaceStore, name, spying(name))
    index = VectorIndex(tmp_path, DIM, threads=1)
    try:
        await index.upsert("ns", "a", np.ones(DIM), {"k": 1})
        await index.query("ns", np.ones(DIM))
        await index.query("ns", np.ones(DIM), filter={"k": 1})
    finally:
        await index.close()
    assert set(threads) == {"search", "rank_many"}
    assert all(thread.startswith("vectors") for thread in threads.values())


async def test_v7_concurrent_queries_share_one_product_and_match_single_queries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pool-sized queries arriving together are answered in one batch, as if run alone."""
    from app.vectors import store as store_module

    monkeypatch.setattr(index_module, "INLINE_MAX_CELLS", 0)
    monkeypatch.setattr(index_module, "BATCH_MIN_CELLS", 0)
    sizes: list[int] = []
    original = store_module.NamespaceStore.rank_many

    def spy(self: store_module.NamespaceStore, queries: np.ndarray, top_k: list[int]) -> object:
        sizes.append(len(top_k))
        return original(self, queries, top_k)

    monkeypatch.setattr(store_module.NamespaceStore, "rank_many", spy)
    rng = np.random.default_rng(11)
    index = VectorIndex(tmp_path, DIM, threads=2)
    try:
        await index.upsert_arrays(
            "ns", [f"v{i}" for i in range(50)], rng.standard_normal((50, DIM)), [{"i": 1}] * 50
        )
        queries = rng.standard_normal((9, DIM))
        ks = [1, 3, 10, 50, 60, 2, 7, 5, 4]
        alone = [await index.query("ns", q, k) for q, k in zip(queries, ks, strict=True)]
        sizes.clear()
        together = await asyncio.gather(
            *(index.query("ns", q, k) for q, k in zip(queries, ks, strict=True))
        )
    finally:
        await index.close()
    assert max(sizes) > 1
    assert sum(sizes) == len(ks)
    for one, batched, k in zip(alone, together, ks, strict=True):
        assert len(batched) == min(k, 50)
        assert [m.id for m in batched] == [m.id for m in one]
        np.testing.assert_allclose([m.score for m in batched], [m.score for m in one], atol=1e-5)
        assert all(m.metadata == {"i": 1} for m in batched)
    together[0][0].metadata["i"] = 2  # type: ignore[index]
    assert together[1][0].metadata == {"i": 1}


async def test_v7_a_cancelled_query_leaves_its_batch_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cancelling one of several queued pool-sized queries still answers the others."""
    monkeypatch.setattr(index_module, "INLINE_MAX_CELLS", 0)
    monkeypatch.setattr(index_module, "BATCH_MIN_CELLS", 0)
    index = VectorIndex(tmp_path, DIM, threads=2)
    try:
        await index.upsert_arrays("ns", ["a", "b"], np.eye(2, DIM))
        tasks = [asyncio.create_task(index.query("ns", np.eye(2, DIM)[i % 2], 1)) for i in range(4)]
        await asyncio.sleep(0)
        tasks[1].cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        await index.close()
    assert isinstance(results[1], asyncio.CancelledError)
    answered = [r for i, r in enumerate(results) if i != 1]
    assert [[m.id for m in r] for r in answered if not isinstance(r, BaseException)] == [
        ["a"],
        ["a"],
        ["b"],
    ]


def points_at_a_snapshot(path: Path) -> bool:
    """Whether CURRENT exists and names a snapshot (a first save writes a "none yet" one)."""
    pointer = path / "CURRENT"
    return pointer.exists() and json.loads(pointer.read_text())["snapshot"] is not None


async def test_v7_autosave_writes_a_snapshot_after_changes(tmp_path: Path) -> None:
    """start_autosave saves within an interval after a change; close() stops it."""
    index = VectorIndex(tmp_path, DIM)
    try:
        await index.load()
        index.start_autosave(0.05)
        await index.upsert("ns", "a", np.ones(DIM))
        for _ in range(100):
            if await asyncio.to_thread(points_at_a_snapshot, tmp_path):
                break
            await asyncio.sleep(0.02)
        assert points_at_a_snapshot(tmp_path)
    finally:
        await index.close()
    reader = VectorIndex(tmp_path, DIM)
    try:
        await reader.load()
        assert await reader.count("ns") == 1
    finally:
        await reader.close()


async def test_v7_autosave_outlives_a_failed_save_and_close_still_works(tmp_path: Path) -> None:
    """A save that fails (CURRENT gone: SnapshotCorruptError) is logged; the next tick
    saves again once the damage is repaired, and close() stops the task cleanly."""
    index = VectorIndex(tmp_path, DIM)
    pointer, aside = tmp_path / "CURRENT", tmp_path / "CURRENT.aside"
    try:
        await index.upsert("ns", "a", np.ones(DIM))
        await index.save()
        first = json.loads(pointer.read_text())["snapshot"]
        pointer.rename(aside)
        with capture_logs() as logs:
            index.start_autosave(0.02)
            await index.upsert("ns", "b", np.ones(DIM))
            for _ in range(200):
                if any(entry["event"] == "vectors.autosave_failed" for entry in logs):
                    break
                await asyncio.sleep(0.01)
        failed = [entry for entry in logs if entry["event"] == "vectors.autosave_failed"]
        assert failed, "the failed autosave was not logged"
        aside.rename(pointer)
        for _ in range(200):
            if json.loads(pointer.read_text())["snapshot"] != first:
                break
            await asyncio.sleep(0.01)
        assert json.loads(pointer.read_text())["snapshot"] != first
    finally:
        await index.close()
    reader = VectorIndex(tmp_path, DIM)
    try:
        await reader.load()
        assert await reader.count("ns") == 2
    finally:
        await reader.close()


async def test_v7_close_waits_for_a_save_in_flight(tmp_path: Path) -> None:
    """close() during save() lets the save finish; later calls raise BackendClosedError."""
    from app.errors import BackendClosedError

    index = VectorIndex(tmp_path, DIM)
    await index.upsert_arrays("ns", [f"v{i}" for i in range(100)], np.ones((100, DIM)))
    saving = asyncio.create_task(index.save())
    await asyncio.sleep(0)
    await index.close()
    await saving
    with pytest.raises(BackendClosedError, match="closed"):
        await index.count("ns")
    reader = VectorIndex(tmp_path, DIM)
    try:
        await reader.load()
        assert await reader.count("ns") == 100
    finally:
        await reader.close()


async def test_v7_calls_waiting_for_a_lock_fail_cleanly_after_close(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A call queued behind the namespace lock when close() runs raises BackendClosedError."""
    from app.errors import BackendClosedError

    monkeypatch.setattr(index_module, "INLINE_MAX_CELLS", 0)
    monkeypatch.setattr(index_module, "BATCH_MIN_CELLS", 0)
    index = VectorIndex(tmp_path, DIM)
    await index.upsert("ns", "a", np.ones(DIM))
    first = asyncio.create_task(index.upsert_arrays("ns", ["b"], np.ones((1, DIM))))
    queued = asyncio.create_task(index.query("ns", np.ones(DIM)))
    await asyncio.sleep(0)
    await index.close()
    await first
    with pytest.raises(BackendClosedError):
        await queued
