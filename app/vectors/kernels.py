"""Exact top-k inner-product kernels, and the choice between them per shape, by measurement.

Two exact kernels compute the same result (up to float rounding and the order of ties):

- ``numpy``: ``X @ q`` then ``argpartition``. numpy's BLAS spreads one matrix-vector
  product over every core: fastest on an idle machine (20k x 1536 on 2 cores: 3.5 ms vs
  3.9 ms for FAISS; 20k x 128: 0.12 ms vs 0.16 ms).
- ``faiss``: ``faiss.knn`` (FAISS's SIMD exhaustive scan, one thread for one query). It
  degrades much less than a multi-threaded BLAS call when the cores are busy (measured on
  the same machine under load: 10.5 ms vs 13.2 ms at d=1536, 0.8 ms vs 2.0 ms at d=128).

Which one wins depends on the shape and on the load, so :class:`KernelChooser` measures:
per shape bucket (rows rounded to a power of two, dimension) it keeps a moving average of
the cost per row of each kernel, uses the cheaper one, and re-measures the other on one
query in ``EXPLORE_EVERY`` times their cost ratio (capped at 16), so exploring costs about
1/64 of the time whatever the ratio.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Final

import faiss
import numpy as np
import numpy.typing as npt

from app.vectors.validation import Matrix

__all__ = [
    "EXPLORE_EVERY",
    "KERNELS",
    "Kernel",
    "KernelChooser",
    "Result",
    "top_k_faiss",
    "top_k_numpy",
]

EXPLORE_EVERY: Final = 64
_WEIGHT: Final = 0.25
_MAX_RATIO: Final = 16.0

Result = tuple[npt.NDArray[np.intp], npt.NDArray[np.float32]]
Kernel = Callable[[Matrix, npt.NDArray[np.float32], int], Result]


def top_k_numpy(matrix: Matrix, query: npt.NDArray[np.float32], k: int) -> Result:
    """Rows and scores of the ``k`` largest ``matrix @ query``, best first."""
    scores = matrix @ query
    count = scores.shape[0]
    if k < count:
        best = np.argpartition(scores, count - k)[count - k :]
        best = best[np.argsort(-scores[best], kind="stable")]
    else:
        best = np.argsort(-scores, kind="stable")
    return best, scores[best]


def top_k_faiss(matrix: Matrix, query: npt.NDArray[np.float32], k: int) -> Result:
    """The same with FAISS's exact kernel (``k`` must not exceed the rows)."""
    distances, labels = faiss.knn(query.reshape(1, -1), matrix, k, faiss.METRIC_INNER_PRODUCT)
    return labels[0].astype(np.intp, copy=False), distances[0]


KERNELS: tuple[Kernel, Kernel] = (top_k_numpy, top_k_faiss)


class KernelChooser:
    """Picks the cheaper kernel per shape from measured costs (not thread-safe: one per store)."""

    def __init__(self) -> None:
        self._cost: dict[tuple[int, int], list[float]] = {}
        self._since: dict[tuple[int, int], int] = {}

    def search(self, matrix: Matrix, query: npt.NDArray[np.float32], k: int) -> Result:
        """Run the chosen kernel on ``matrix`` and record what it cost."""
        rows = matrix.shape[0]
        bucket = (rows.bit_length(), matrix.shape[1])
        cost = self._cost.setdefault(bucket, [math.nan, math.nan])
        choice = self._choose(bucket, cost)
        start = time.perf_counter()
        result = KERNELS[choice](matrix, query, k)
        per_row = (time.perf_counter() - start) / max(rows, 1)
        previous = cost[choice]
        cost[choice] = (
            per_row if math.isnan(previous) else previous + _WEIGHT * (per_row - previous)
        )
        return result

    def _choose(self, bucket: tuple[int, int], cost: list[float]) -> int:
        if math.isnan(cost[0]):
            return 0
        if math.isnan(cost[1]):
            return 1
        best = 0 if cost[0] <= cost[1] else 1
        # Re-measure the other kernel once per EXPLORE_EVERY x (its cost ratio, at most 16)
        # calls, so exploring never costs more than about 1/EXPLORE_EVERY of the time.
        ratio = cost[1 - best] / cost[best] if cost[best] > 0 else _MAX_RATIO
        since = self._since.get(bucket, 0) + 1
        if since >= EXPLORE_EVERY * min(max(ratio, 1.0), _MAX_RATIO):
            self._since[bucket] = 0
            return 1 - best
        self._since[bucket] = since
        return best

    def preferred(self, rows: int, dimension: int) -> str | None:
        """The kernel currently preferred for this shape (``None`` until both were measured)."""
        cost = self._cost.get((rows.bit_length(), dimension))
        if cost is None or any(math.isnan(value) for value in cost):
            return None
        return ("numpy", "faiss")[0 if cost[0] <= cost[1] else 1]
