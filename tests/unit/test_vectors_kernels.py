"""The exact top-k kernels agree, ties go by id, and the chooser follows the measured cost."""

from __future__ import annotations

import time
from typing import Any

import faiss
import numpy as np
import pytest

from app.vectors import kernels
from app.vectors.kernels import (
    KernelChooser,
    top_k_faiss,
    top_k_many,
    top_k_numpy,
    top_k_settled,
)


@pytest.mark.parametrize(("rows", "k"), [(1, 1), (10, 3), (500, 10), (500, 500)])
def test_kernels_return_the_same_top_k(rows: int, k: int) -> None:
    """numpy and FAISS return the same rows and scores, best first."""
    rng = np.random.default_rng(rows)
    matrix = rng.standard_normal((rows, 32)).astype(np.float32)
    query = rng.standard_normal(32).astype(np.float32)
    rows_np, scores_np = top_k_numpy(matrix, query, k)
    rows_fa, scores_fa = top_k_faiss(matrix, query, k)
    assert rows_np.tolist() == rows_fa.tolist()
    np.testing.assert_allclose(scores_np, scores_fa, rtol=1e-5, atol=1e-5)
    assert list(scores_np) == sorted(scores_np, reverse=True)


def test_top_k_many_matches_one_query_at_a_time() -> None:
    """The batched kernel returns, per query and its own k, what top_k_numpy returns."""
    rng = np.random.default_rng(5)
    matrix = rng.standard_normal((300, 16)).astype(np.float32)
    queries = rng.standard_normal((4, 16)).astype(np.float32)
    ks = [1, 10, 300, 7]
    batched = top_k_many(matrix, queries, ks, str)
    for (rows, scores), query, k in zip(batched, queries, ks, strict=True):
        rows_one, scores_one = top_k_numpy(matrix, query, k)
        assert rows.tolist() == rows_one.tolist()
        np.testing.assert_allclose(scores, scores_one, rtol=1e-5, atol=1e-5)
        assert (rows.dtype, scores.dtype, rows.shape, scores.shape) == (
            np.dtype(np.intp),
            np.dtype(np.float32),
            (k,),
            (k,),
        )


def shuffled_copies(count: int, dimension: int, seed: int) -> tuple[np.ndarray, list[str]]:
    """``count`` identical unit rows, and ids whose order is not the row order."""
    rng = np.random.default_rng(seed)
    row = rng.standard_normal(dimension).astype(np.float32)
    row /= np.linalg.norm(row)
    ids = [f"id{i:02d}" for i in rng.permutation(count)]
    return np.tile(row, (count, 1)), ids


@pytest.mark.parametrize("kernel", [top_k_numpy, top_k_faiss])
@pytest.mark.parametrize("dimension", [7, 33, 128])
def test_identical_rows_give_the_smallest_ids_with_either_kernel(
    kernel: kernels.Kernel, dimension: int
) -> None:
    """Ties go to the smallest ids in id order, with equal scores (numpy's BLAS can differ)."""
    matrix, ids = shuffled_copies(50, dimension, dimension)
    rng = np.random.default_rng(1)
    for k in (1, 3, 49, 50):
        for _ in range(10):
            query = rng.standard_normal(dimension).astype(np.float32)
            rows, scores = top_k_settled(kernel, matrix, query, k, ids.__getitem__)
            assert [ids[row] for row in rows.tolist()] == sorted(ids)[:k]
            assert len(set(scores.tolist())) == 1
            assert (rows.dtype, scores.dtype) == (np.dtype(np.intp), np.dtype(np.float32))


def test_batched_and_single_queries_agree_on_ties() -> None:
    """top_k_many keeps and orders tied rows as top_k_settled does, with either kernel."""
    matrix, ids = shuffled_copies(40, 16, 3)
    rng = np.random.default_rng(2)
    extra = rng.standard_normal((20, 16)).astype(np.float32)
    matrix = np.vstack([matrix, extra / np.linalg.norm(extra, axis=1, keepdims=True)])
    ids += [f"x{i}" for i in range(20)]
    queries = rng.standard_normal((6, 16)).astype(np.float32)
    ks = [1, 2, 5, 39, 45, 60]
    batched = top_k_many(matrix, queries, ks, ids.__getitem__)
    for (rows, _), query, k in zip(batched, queries, ks, strict=True):
        for kernel in (top_k_numpy, top_k_faiss):
            single, _ = top_k_settled(kernel, matrix, query, k, ids.__getitem__)
            assert rows.tolist() == single.tolist()


def test_untied_candidates_are_not_rescored(monkeypatch: pytest.MonkeyPatch) -> None:
    """With no near tie among the k + 1 best, the kernel's own rows and scores come back."""

    def fail(*args: object) -> None:
        raise AssertionError("rescored untied candidates")

    monkeypatch.setattr(kernels, "_exact_scores", fail)
    rng = np.random.default_rng(4)
    matrix = rng.standard_normal((2000, 64)).astype(np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    query = matrix[7] + np.float32(0.1) * rng.standard_normal(64).astype(np.float32)
    for kernel in (top_k_numpy, top_k_faiss):
        rows, scores = top_k_settled(kernel, matrix, query, 10, str)
        kernel_rows, kernel_scores = kernel(matrix, query, 10)
        assert rows.tolist() == kernel_rows.tolist()
        assert scores.tolist() == kernel_scores.tolist()
    [(rows, _)] = top_k_many(matrix, query.reshape(1, -1), [10], str)
    assert rows.tolist() == top_k_numpy(matrix, query, 10)[0].tolist()


def test_a_near_tie_keeps_score_order_and_exact_ties_use_ids() -> None:
    """Scores 2e-6 apart keep score order; exactly equal ones come by id, across the k-th place."""
    rows = np.array([[0.6, 0.8], [0.600002, np.sqrt(1 - 0.600002**2)], [0.6, 0.8], [0.6, 0.8]])
    rotation, _ = np.linalg.qr(np.random.default_rng(6).standard_normal((8, 8)))
    matrix = (np.hstack([rows, np.zeros((4, 6))]) @ rotation).astype(np.float32)
    query = rotation[0].astype(np.float32)
    ids = ["d", "z", "b", "c"]
    for kernel in (top_k_numpy, top_k_faiss):
        for k, expected in [
            (1, ["z"]),
            (2, ["z", "b"]),
            (3, ["z", "b", "c"]),
            (4, ["z", "b", "c", "d"]),
        ]:
            found, _ = top_k_settled(kernel, matrix, query, k, ids.__getitem__)
            assert [ids[row] for row in found.tolist()] == expected


def test_faiss_kernel_runs_on_one_thread_and_restores_the_callers_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A team of OpenMP threads would spin after the call; the caller's setting comes back."""
    seen: list[int] = []
    original_knn = faiss.knn

    def spying_knn(*args: Any, **kwargs: Any) -> Any:
        seen.append(faiss.omp_get_max_threads())
        return original_knn(*args, **kwargs)

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(2)
    try:
        monkeypatch.setattr(faiss, "knn", spying_knn)
        top_k_faiss(np.eye(4, 8, dtype=np.float32), np.ones(8, dtype=np.float32), 2)
        assert seen == [1]
        assert faiss.omp_get_max_threads() == 2
    finally:
        faiss.omp_set_num_threads(before)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_chooser_prefers_the_cheaper_kernel_and_keeps_measuring(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """After warming up and measuring both, the cheaper kernel runs, the other in rare bursts."""
    clock = FakeClock()
    costs = {"slow": 0.004, "fast": 0.001}
    calls: list[str] = []

    def kernel(name: str) -> kernels.Kernel:
        def run(matrix: np.ndarray, query: np.ndarray, k: int) -> kernels.Result:
            calls.append(name)
            clock.now += costs[name]
            return top_k_numpy(matrix, query, k)

        return run

    monkeypatch.setattr(time, "perf_counter", clock)
    monkeypatch.setattr(kernels, "KERNELS", (kernel("slow"), kernel("fast")))
    chooser = KernelChooser()
    matrix = np.eye(4, dtype=np.float32)
    query = np.ones(4, dtype=np.float32)
    settle, burst = 2 * kernels._SETTLED, kernels._BURST
    period = kernels.EXPLORE_EVERY * burst * 4
    for _ in range(settle + 2 * (period + burst) + 10):  # two periods (+ float rounding)
        chooser.search(matrix, query, 2)
    # Warmed up and measured both, then the slow one (4x the cost) in a burst per period.
    assert calls[:settle] == ["slow"] * kernels._SETTLED + ["fast"] * kernels._SETTLED
    assert calls.count("slow") == kernels._SETTLED + 2 * burst
    first = calls.index("slow", settle)
    assert calls[first : first + burst] == ["slow"] * burst
    assert chooser.preferred(4, 4) == "faiss"  # the second slot
    costs.update(slow=0.0001, fast=0.01)
    for _ in range(period + 8):
        chooser.search(matrix, query, 2)
    assert chooser.preferred(4, 4) == "numpy"  # the first slot
    assert calls[-8:] == ["slow"] * 8
    assert chooser.preferred(1000, 4) is None


def test_chooser_ignores_the_cold_first_call(monkeypatch: pytest.MonkeyPatch) -> None:
    """A slow warm-up call or one slow early call does not make the other kernel preferred."""
    clock = FakeClock()
    costs = {"numpy": [0.5, 0.003, 0.001, 0.001], "faiss": [0.002, 0.002, 0.002]}

    def kernel(name: str) -> kernels.Kernel:
        def run(matrix: np.ndarray, query: np.ndarray, k: int) -> kernels.Result:
            clock.now += costs[name].pop(0) if len(costs[name]) > 1 else costs[name][0]
            return top_k_numpy(matrix, query, k)

        return run

    monkeypatch.setattr(time, "perf_counter", clock)
    monkeypatch.setattr(kernels, "KERNELS", (kernel("numpy"), kernel("faiss")))
    chooser = KernelChooser()
    matrix = np.eye(4, dtype=np.float32)
    query = np.ones(4, dtype=np.float32)
    for _ in range(2 * kernels._SETTLED):
        chooser.search(matrix, query, 2)
    assert chooser.preferred(4, 4) == "numpy"


def test_one_preempted_call_does_not_flip_the_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    """A single call 100x slower than usual does not move the median of its kernel's calls."""
    clock = FakeClock()
    spike = [False]

    def kernel(cost: float) -> kernels.Kernel:
        def run(matrix: np.ndarray, query: np.ndarray, k: int) -> kernels.Result:
            clock.now += cost * (100 if spike[0] else 1)
            spike[0] = False
            return top_k_numpy(matrix, query, k)

        return run

    monkeypatch.setattr(time, "perf_counter", clock)
    monkeypatch.setattr(kernels, "KERNELS", (kernel(0.001), kernel(0.002)))
    chooser = KernelChooser()
    matrix = np.eye(4, dtype=np.float32)
    query = np.ones(4, dtype=np.float32)
    for _ in range(2 * kernels._SETTLED):
        chooser.search(matrix, query, 2)
    assert chooser.preferred(4, 4) == "numpy"
    spike[0] = True
    chooser.search(matrix, query, 2)
    assert chooser.preferred(4, 4) == "numpy"
