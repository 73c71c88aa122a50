"""The two exact top-k kernels agree, and the chooser follows the measured cost per shape."""

from __future__ import annotations

import numpy as np
import pytest

from app.vectors import kernels
from app.vectors.kernels import KernelChooser, top_k_faiss, top_k_numpy


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


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_chooser_prefers_the_cheaper_kernel_and_keeps_measuring(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """After measuring both, the cheaper kernel runs, the other once every EXPLORE_EVERY calls."""
    clock = FakeClock()
    costs = {"slow": 0.004, "fast": 0.001}
    calls: list[str] = []

    def kernel(name: str) -> kernels.Kernel:
        def run(matrix: np.ndarray, query: np.ndarray, k: int) -> kernels.Result:
            calls.append(name)
            clock.now += costs[name]
            return top_k_numpy(matrix, query, k)

        return run

    monkeypatch.setattr(kernels.time, "perf_counter", clock)
    monkeypatch.setattr(kernels, "KERNELS", (kernel("slow"), kernel("fast")))
    chooser = KernelChooser()
    matrix = np.eye(4, dtype=np.float32)
    query = np.ones(4, dtype=np.float32)
    for _ in range(kernels.EXPLORE_EVERY * 4 * 2 + 2):
        chooser.search(matrix, query, 2)
    # Measured both, then the slow one (4x the cost) again once per 64 x 4 calls.
    assert calls[:2] == ["slow", "fast"]
    assert calls.count("slow") == 1 + 2
    assert chooser.preferred(4, 4) == "faiss"  # the second slot
    costs.update(slow=0.0001, fast=0.01)
    for _ in range(kernels.EXPLORE_EVERY * 4 + 8):
        chooser.search(matrix, query, 2)
    assert chooser.preferred(4, 4) == "numpy"  # the first slot
    assert calls[-8:] == ["slow"] * 8
    assert chooser.preferred(1000, 4) is None
