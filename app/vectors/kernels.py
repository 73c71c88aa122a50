"""Exact top-k inner-product kernels, and the choice between them per shape, by measurement.

Two exact kernels compute the same result (up to float rounding and the order of ties):

- ``numpy``: ``X @ q`` then ``argpartition``. numpy's BLAS spreads one matrix-vector
  product over every core: fastest on an idle machine (20k x 1536 on 2 cores: 3.5 ms vs
  3.9 ms for FAISS; 20k x 128: 0.12 ms vs 0.16 ms).
- ``faiss``: ``faiss.knn`` (FAISS's SIMD exhaustive scan, one thread for one query). It
  degrades much less than a multi-threaded BLAS call when the cores are busy (measured on
  the same machine under load: 10.5 ms vs 13.2 ms at d=1536, 0.8 ms vs 2.0 ms at d=128).

Which one wins depends on the shape and on the load, so :class:`KernelChooser` measures:
per shape bucket (rows rounded to a power of two, dimension) it keeps the cost per row of
each kernel's last ``_WINDOW`` calls and uses the kernel whose median is lower.

- Settling: each kernel runs ``_SETTLED`` times in a row (numpy first); the first call
  is a warm-up and not recorded (BLAS thread start-up, cold caches: recorded, it made the
  faster kernel look several times slower for the next thousand queries). Runs, not
  alternating calls: at 20k x 128 numpy's calls right after FAISS calls measured
  0.3-7 ms, its steady state 0.13 ms.
- Exploring: once per ``EXPLORE_EVERY x _BURST x`` their cost ratio (capped at 16)
  queries, the other kernel runs a burst of ``_BURST`` queries, so exploring costs about
  1/64 of the time whatever the ratio. A burst, not one call: numpy's first calls after
  a streak of FAISS calls pay for waking BLAS's threads (measured at 20k x 128: 0.2-0.4 ms
  against 0.125 ms back to back), so one call never showed numpy's real cost once FAISS
  had been chosen. The second half of the burst replaces that kernel's recent calls.
- Medians, not averages: numpy's multi-threaded product has a long tail on a machine with
  other work (a call now and then at 1.5x its usual time), FAISS's single thread a short
  one. A moving average of recent calls (tried, with spikes capped at 2x) rated numpy
  above FAISS at 20k x 1536 while numpy's median call was 17% faster, and picked FAISS
  for 56-75% of the queries; the median of a window also shrugs off a preempted call.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
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
    "top_k_many",
    "top_k_numpy",
    "top_k_of",
]

EXPLORE_EVERY: Final = 64
_MAX_RATIO: Final = 16.0
_BURST: Final = 16  # calls per exploration: numpy's first calls wake BLAS's threads
_SETTLED: Final = 16  # calls per kernel and bucket before choosing (first = warm-up)
_WINDOW: Final = 15  # recent calls per kernel whose median is its cost

Result = tuple[npt.NDArray[np.intp], npt.NDArray[np.float32]]
Kernel = Callable[[Matrix, npt.NDArray[np.float32], int], Result]


def top_k_numpy(matrix: Matrix, query: npt.NDArray[np.float32], k: int) -> Result:
    """Rows and scores of the ``k`` largest ``matrix @ query``, best first."""
    return top_k_of(matrix @ query, k)


def top_k_many(matrix: Matrix, queries: Matrix, ks: Sequence[int]) -> list[Result]:
    """``top_k_numpy`` for each row of ``queries`` (with its own ``k``) in one matrix product.

    One pass over ``matrix`` for all queries: concurrent queries of a namespace cost little
    more than one (the single product is bound by memory bandwidth).
    """
    scores = queries @ matrix.T
    count, deepest = scores.shape[1], max(ks)
    if deepest < count:
        best = np.argpartition(scores, count - deepest, axis=1)[:, count - deepest :]
    else:
        best = np.broadcast_to(np.arange(count), scores.shape)
    # A few calls over the whole batch, not a few per query: on a worker thread each call
    # may wait for the GIL behind a busy event loop.
    values = np.take_along_axis(scores, best, axis=1)
    order = np.argsort(-values, axis=1, kind="stable")
    best = np.take_along_axis(best, order, axis=1)
    values = np.take_along_axis(values, order, axis=1)
    return [(best[row, :k], values[row, :k]) for row, k in enumerate(ks)]


def top_k_of(scores: npt.NDArray[np.float32], k: int) -> Result:
    """Positions and values of the ``k`` largest ``scores``, best first (stable on ties)."""
    count = scores.shape[0]
    if k < count:
        best = np.argpartition(scores, count - k)[count - k :]
        best = best[np.argsort(-scores[best], kind="stable")]
    else:
        best = np.argsort(-scores, kind="stable")
    return best, scores[best]


def top_k_faiss(matrix: Matrix, query: npt.NDArray[np.float32], k: int) -> Result:
    """The same with FAISS's exact kernel (``k`` must not exceed the rows), on one thread.

    One query is one thread's work anyway; a team of OpenMP threads would spin for a while
    after the call and slow the BLAS calls that follow (seen: batches of 32 at 20k x 384
    taking 20-29 ms instead of 9 ms). The caller's thread setting is restored.
    """
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        distances, labels = faiss.knn(query.reshape(1, -1), matrix, k, faiss.METRIC_INNER_PRODUCT)
    finally:
        faiss.omp_set_num_threads(threads)
    return labels[0].astype(np.intp, copy=False), distances[0]


KERNELS: tuple[Kernel, Kernel] = (top_k_numpy, top_k_faiss)


@dataclass(slots=True)
class _Bucket:
    """What the chooser knows of one shape bucket; kernel ``i`` is ``KERNELS[i]``."""

    recent: tuple[deque[float], deque[float]] = field(
        default_factory=lambda: (deque(maxlen=_WINDOW), deque(maxlen=_WINDOW))
    )
    cost: list[float] = field(default_factory=lambda: [math.inf, math.inf])  # median per row
    settling: list[int] = field(default_factory=lambda: [0, 0])  # calls, up to _SETTLED
    since_burst: int = 0
    burst_left: int = 0
    burst_kernel: int = 0
    burst: list[float] = field(default_factory=list)

    def record(self, kernel: int, per_row: float) -> None:
        recent = self.recent[kernel]
        recent.append(per_row)
        self.cost[kernel] = sorted(recent)[len(recent) // 2]


class KernelChooser:
    """Picks the cheaper kernel per shape from measured costs (not thread-safe: one per store)."""

    def __init__(self) -> None:
        self._buckets: dict[tuple[int, int], _Bucket] = {}

    def search(self, matrix: Matrix, query: npt.NDArray[np.float32], k: int) -> Result:
        """Run the chosen kernel on ``matrix`` and record what it cost."""
        rows = matrix.shape[0]
        key = (rows.bit_length(), matrix.shape[1])
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket()
        choice, exploring = self._choose(bucket)
        start = time.perf_counter()
        result = KERNELS[choice](matrix, query, k)
        per_row = (time.perf_counter() - start) / max(rows, 1)
        if exploring:
            self._explored(bucket, choice, per_row)
        elif bucket.settling[choice] < _SETTLED:
            bucket.settling[choice] += 1
            if bucket.settling[choice] > 1:  # the first call is a warm-up
                bucket.record(choice, per_row)
        else:
            bucket.record(choice, per_row)
        return result

    @staticmethod
    def _explored(bucket: _Bucket, choice: int, per_row: float) -> None:
        """Collect a burst; its second half becomes the kernel's recent calls."""
        bucket.burst.append(per_row)
        if bucket.burst_left > 0:  # more calls of this burst to come
            return
        bucket.recent[choice].clear()
        for sample in bucket.burst[len(bucket.burst) // 2 :]:
            bucket.record(choice, sample)
        bucket.burst.clear()

    @staticmethod
    def _choose(bucket: _Bucket) -> tuple[int, bool]:
        for kernel in (0, 1):  # each kernel settles in a run of its own (warm BLAS threads)
            if bucket.settling[kernel] < _SETTLED:
                return kernel, False
        if bucket.burst_left > 0:  # inside an exploration burst
            bucket.burst_left -= 1
            return bucket.burst_kernel, True
        cost = bucket.cost
        best = 0 if cost[0] <= cost[1] else 1
        # Re-measure the other kernel for a burst of _BURST calls once per EXPLORE_EVERY x
        # _BURST x (its cost ratio, at most 16) calls: exploring costs about 1/EXPLORE_EVERY.
        cheap, dear = cost[best], cost[1 - best]
        ratio = dear / cheap if cheap > 0 else _MAX_RATIO
        bucket.since_burst += 1
        if bucket.since_burst >= EXPLORE_EVERY * _BURST * min(max(ratio, 1.0), _MAX_RATIO):
            bucket.since_burst = 0
            bucket.burst_left = _BURST - 1
            bucket.burst_kernel = 1 - best
            return 1 - best, True
        return best, False

    def preferred(self, rows: int, dimension: int) -> str | None:
        """The kernel currently preferred for this shape (``None`` until both were measured)."""
        bucket = self._buckets.get((rows.bit_length(), dimension))
        if bucket is None or min(bucket.settling) < _SETTLED:
            return None
        return ("numpy", "faiss")[0 if bucket.cost[0] <= bucket.cost[1] else 1]
