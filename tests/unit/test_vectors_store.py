"""The synchronous namespace store: in-place upsert, swap-with-last delete, growth, search."""

from __future__ import annotations

import numpy as np
import pytest

from app.errors import InvalidVectorError
from app.vectors import kernels
from app.vectors.store import PER_QUERY_MAX_BATCH, NamespaceStore
from app.vectors.validation import normalised_vector, prepare_batch


def put(store: NamespaceStore, ids: list[str], vectors: list[list[float]]) -> int:
    batch = prepare_batch(ids, vectors, None, store.dimension)
    return store.upsert(batch.ids, batch.vectors, batch.scale, batch.metadata)


def test_delete_moves_the_last_row_into_the_freed_slot() -> None:
    """Deleting a middle id copies the last row there and keeps every id findable."""
    store = NamespaceStore(2)
    put(store, ["a", "b", "c"], [[1, 0], [0, 1], [1, 1]])
    matrix_before = store._matrix
    assert store.delete(["a"]) == 1
    assert store.ids == ["c", "b"]
    assert store._matrix is matrix_before
    [c] = store.get(["c"])
    np.testing.assert_allclose(c.vector, np.array([1, 1]) / np.sqrt(2), rtol=1e-6)
    assert store.delete(["a", "zzz"]) == 0
    assert len(store) == 2


def test_upsert_of_known_id_overwrites_its_row_in_place() -> None:
    """Re-upserting keeps the row, the count and the matrix object."""
    store = NamespaceStore(2)
    put(store, ["a", "b"], [[1, 0], [0, 1]])
    matrix_before = store._matrix
    assert put(store, ["a"], [[0, 3]]) == 0
    assert store.ids == ["a", "b"]
    assert store._matrix is matrix_before
    np.testing.assert_allclose(store.get(["a"])[0].vector, [0, 1])


def test_mixed_batch_updates_and_appends() -> None:
    """A batch with known and new ids updates the former and appends the latter in order."""
    store = NamespaceStore(2)
    put(store, ["a", "b"], [[1, 0], [0, 1]])
    assert put(store, ["x", "b", "y"], [[1, 1], [2, 0], [0, 2]]) == 2
    assert store.ids == ["a", "b", "x", "y"]
    np.testing.assert_allclose(store.get(["b"])[0].vector, [1, 0])


def test_capacity_grows_by_doubling_and_keeps_rows() -> None:
    """Appending past the capacity reallocates at least twice as large and keeps old rows."""
    store = NamespaceStore(3)
    rng = np.random.default_rng(1)
    vectors = rng.standard_normal((40, 3))
    for i, row in enumerate(vectors):
        put(store, [f"v{i}"], [row.tolist()])
    assert store._matrix.shape[0] >= 40
    got = np.stack([record.vector for record in store.get([f"v{i}" for i in range(40)])])
    expected = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_repeated_id_in_one_batch_keeps_the_last() -> None:
    """Within one batch the last occurrence of an id wins."""
    store = NamespaceStore(2)
    put(store, ["a", "a", "b"], [[1, 0], [0, 1], [1, 1]])
    assert store.ids == ["a", "b"]
    np.testing.assert_allclose(store.get(["a"])[0].vector, [0, 1])


@pytest.mark.parametrize("top_k", [1, 3, 5, 10])
def test_search_returns_min_of_top_k_and_size_ordered(top_k: int) -> None:
    """search returns min(top_k, size) hits with scores in descending order."""
    store = NamespaceStore(2)
    put(store, ["a", "b", "c", "d", "e"], [[1, 0], [1, 1], [0, 1], [-1, 1], [-1, 0]])
    hits = store.search(normalised_vector([1, 0], 2), top_k, None)
    assert len(hits) == min(top_k, 5)
    scores = [hit.score for hit in hits]
    assert scores == sorted(scores, reverse=True)
    assert hits[0].id == "a"


def test_tiny_and_huge_finite_vectors_normalise_exactly() -> None:
    """Vectors whose squared norm under- or overflows float32 still become unit vectors."""
    store = NamespaceStore(2)
    put(store, ["tiny", "huge"], [[1e-30, 1e-30], [3e30, 4e30]])
    tiny, huge = store.get(["tiny", "huge"])
    np.testing.assert_allclose(tiny.vector, [np.sqrt(0.5), np.sqrt(0.5)], rtol=1e-6)
    np.testing.assert_allclose(huge.vector, [0.6, 0.8], rtol=1e-6)


@pytest.mark.parametrize("rows", [4, 1024])  # below and above the FAISS row-norm threshold
def test_batch_normalisation_is_the_same_for_small_and_large_batches(rows: int) -> None:
    """Every row becomes unit norm (tiny and huge ones too); a NaN row names its row."""
    dimension = 128
    vectors = np.random.default_rng(rows).standard_normal((rows, dimension)).astype(np.float32)
    vectors[1] *= np.float32(1e-30)
    vectors[2] *= np.float32(1e25)
    batch = prepare_batch([f"v{i}" for i in range(rows)], vectors, None, dimension)
    unit = batch.vectors * batch.scale[:, None]
    np.testing.assert_allclose(np.linalg.norm(unit.astype(np.float64), axis=1), 1.0, rtol=1e-5)
    expected = vectors.astype(np.float64)[:3]
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(unit[:3], expected, rtol=1e-5, atol=1e-7)
    vectors[rows - 1, 5] = np.nan
    with pytest.raises(InvalidVectorError, match=rf"vector at row {rows - 1} contains NaN or inf"):
        prepare_batch([f"v{i}" for i in range(rows)], vectors, None, dimension)


def test_an_empty_store_takes_over_the_batch_positions_as_its_id_map() -> None:
    """A first batch (repeated id: its last row wins) leaves every id at the right row."""
    store = NamespaceStore(2)
    batch = prepare_batch(["a", "b", "a", "c"], [[1, 0], [0, 1], [3, 4], [1, 1]], None, 2)
    assert batch.positions == {"a": 1, "b": 0, "c": 2}
    assert batch.ids == ["b", "a", "c"]
    assert store.upsert(batch.ids, batch.vectors, batch.scale, batch.metadata, batch.positions) == 3
    [a] = store.get(["a"])
    np.testing.assert_allclose(a.vector, [0.6, 0.8], rtol=1e-6)
    assert store.delete(["b"]) == 1  # the map is live: the last row moves into row 0
    assert store.ids == ["c", "a"]
    assert [record.id for record in store.get(["a", "b", "c"])] == ["a", "c"]
    assert put(store, ["a", "d"], [[1, 0], [0, 1]]) == 1
    assert store.ids == ["c", "a", "d"]


def test_small_and_large_batches_rank_alike() -> None:
    """Up to PER_QUERY_MAX_BATCH queries get one scan each, more share a product: same answers."""
    rng = np.random.default_rng(3)
    store = NamespaceStore(8)
    put(store, [f"v{i}" for i in range(200)], rng.standard_normal((200, 8)).tolist())
    queries = np.stack([normalised_vector(rng.standard_normal(8), 8) for _ in range(9)])
    ks = [1, 5, 10, 200, 3, 7, 2, 9, 4]
    together = store.rank_many(queries, ks)
    small = PER_QUERY_MAX_BATCH
    alone = store.rank_many(queries[:small], ks[:small])
    alone += store.rank_many(queries[small:], ks[small:])
    for (rows_a, scores_a), (rows_b, scores_b) in zip(together, alone, strict=True):
        assert rows_a.tolist() == rows_b.tolist()
        np.testing.assert_allclose(scores_a, scores_b, rtol=1e-5, atol=1e-6)
    assert [len(rows) for rows, _ in together] == ks


def test_upsert_one_appends_new_ids_and_replaces_known_ones_in_place() -> None:
    """A new id takes the next row (growing the matrix); a known id keeps its row."""
    store = NamespaceStore(2)
    units = [normalised_vector(np.array([1.0, float(i)]), 2) for i in range(40)]
    assert all(store.upsert_one(f"v{i}", unit, {"i": i}) for i, unit in enumerate(units))
    assert store.ids == [f"v{i}" for i in range(40)]
    assert store.upsert_one("v3", units[0], None) is False
    [v3] = store.get(["v3"])
    np.testing.assert_allclose(v3.vector, units[0])
    assert v3.metadata is None
    assert store.ids.index("v3") == 3
    assert len(store) == 40


# Ties: score descending, then id ascending, whichever kernel, path or row order ---------

TIE_DIM = 16


@pytest.fixture(params=["numpy", "faiss"])
def kernel(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Forces one kernel: the chooser picks from a pair of the same kernel."""
    chosen = {"numpy": kernels.top_k_numpy, "faiss": kernels.top_k_faiss}[request.param]
    monkeypatch.setattr(kernels, "KERNELS", (chosen, chosen))
    return str(request.param)


def tie_ids(count: int) -> list[str]:
    return [f"id{i:02d}" for i in range(count)]


def identical_store(count: int = 50) -> NamespaceStore:
    """``count`` copies of one vector, inserted in shuffled order (row order is not id order)."""
    rng = np.random.default_rng(count)
    ids = tie_ids(count)
    shuffled = [ids[i] for i in rng.permutation(count)]
    vector = rng.standard_normal(TIE_DIM)
    store = NamespaceStore(TIE_DIM)
    batch = prepare_batch(
        shuffled, np.tile(vector, (count, 1)), [{"i": int(i[2:])} for i in shuffled], TIE_DIM
    )
    store.upsert(batch.ids, batch.vectors, batch.scale, batch.metadata)
    return store


def random_unit(rng: np.random.Generator) -> np.ndarray:
    return normalised_vector(rng.standard_normal(TIE_DIM), TIE_DIM)


def test_tied_rows_give_the_smallest_ids_in_id_order(kernel: str) -> None:
    """50 identical vectors: every top-3 query returns the 3 smallest ids, in id order."""
    store = identical_store()
    rng = np.random.default_rng(7)
    for _ in range(40):
        hits = store.search(random_unit(rng), 3, None)
        assert [hit.id for hit in hits] == ["id00", "id01", "id02"]
        assert hits[0].score == hits[1].score == hits[2].score
    hits = store.search(random_unit(rng), 60, None)
    assert [hit.id for hit in hits] == tie_ids(50)


def test_ties_follow_ids_not_rows_after_deletes(kernel: str) -> None:
    """Deletes move rows; the smallest remaining ids still come first, in id order."""
    store = identical_store()
    rows_before = store.ids
    assert store.delete(["id00", "id02", "id05", rows_before[0], rows_before[1]]) == 5
    remaining = sorted(store.ids)
    rng = np.random.default_rng(8)
    for _ in range(20):
        assert [hit.id for hit in store.search(random_unit(rng), 3, None)] == remaining[:3]
    assert store.upsert_one("id00", store.get([remaining[0]])[0].vector, None)
    assert [hit.id for hit in store.search(random_unit(rng), 4, None)] == [
        "id00",
        *remaining[:3],
    ]


def test_filtered_queries_apply_the_same_tie_rule(kernel: str) -> None:
    """With a filter, the smallest ids among the kept rows come first, in id order."""
    store = identical_store()
    rng = np.random.default_rng(9)

    def odd(metadata: object) -> bool:
        return isinstance(metadata, dict) and metadata["i"] % 2 == 1

    for _ in range(10):
        assert [hit.id for hit in store.search(random_unit(rng), 3, odd)] == [
            "id01",
            "id03",
            "id05",
        ]


def test_batched_queries_break_ties_like_single_ones(kernel: str) -> None:
    """rank_many, in one product or one scan per query, returns what search returns on ties."""
    store = identical_store()
    rng = np.random.default_rng(10)
    queries = np.stack([random_unit(rng) for _ in range(9)])
    ks = [3, 1, 10, 50, 60, 2, 7, 5, 4]
    single = [
        [hit.id for hit in store.search(q, k, None)] for q, k in zip(queries, ks, strict=True)
    ]
    together = store.rank_many(queries, ks)  # more than PER_QUERY_MAX_BATCH: one product
    alone = store.rank_many(queries[:PER_QUERY_MAX_BATCH], ks[:PER_QUERY_MAX_BATCH])
    for ranked in (together, alone):
        for result, expected in zip(ranked, single, strict=False):
            assert [hit.id for hit in store.matches(result)] == expected
            assert result[0].dtype == np.intp
            assert result[1].dtype == np.float32
    assert single == [tie_ids(50)[: min(k, 50)] for k in ks]


def mixed_store() -> tuple[NamespaceStore, np.ndarray]:
    """Scores 1 > 0.600002 > 0.6 (five ties) > 0.5, ids ordered against the scores, rotated."""
    tied = [0.6, 0.8]
    near = [0.600002, np.sqrt(1 - 0.600002**2)]
    rows = {
        "z-best": [1.0, 0.0],
        "y-near": near,
        **{f"m{i}": tied for i in (3, 0, 4, 1, 2)},
        "a-low": [0.5, np.sqrt(0.75)],
    }
    base = np.zeros((len(rows), TIE_DIM))
    base[:, :2] = list(rows.values())
    rotation, _ = np.linalg.qr(np.random.default_rng(11).standard_normal((TIE_DIM, TIE_DIM)))
    store = NamespaceStore(TIE_DIM)
    batch = prepare_batch(list(rows), base @ rotation, None, TIE_DIM)
    store.upsert(batch.ids, batch.vectors, batch.scale, batch.metadata)
    return store, normalised_vector(rotation[0], TIE_DIM)


@pytest.mark.parametrize(
    ("top_k", "expected"),
    [
        (1, ["z-best"]),
        (2, ["z-best", "y-near"]),
        (4, ["z-best", "y-near", "m0", "m1"]),
        (7, ["z-best", "y-near", "m0", "m1", "m2", "m3", "m4"]),
        (9, ["z-best", "y-near", "m0", "m1", "m2", "m3", "m4", "a-low"]),
    ],
)
def test_score_order_comes_before_id_order(kernel: str, top_k: int, expected: list[str]) -> None:
    """Ids order only equal scores: a higher score (even by 2e-6) comes first whatever its id."""
    store, query = mixed_store()
    hits = store.search(query, top_k, None)
    assert [hit.id for hit in hits] == expected
    scores = [hit.score for hit in hits]
    assert scores == sorted(scores, reverse=True)
    assert len({hit.score for hit in hits if hit.id.startswith("m")}) <= 1
    ranked = store.rank_many(np.stack([query] * 6), [top_k] * 6)
    assert [[hit.id for hit in store.matches(result)] for result in ranked] == [expected] * 6
