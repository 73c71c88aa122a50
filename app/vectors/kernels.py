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
the cost per row of each kernel and uses the cheaper one.

- Settling: each kernel runs ``_SETTLED`` times in a row (numpy first); the first call
  is a warm-up and not recorded (BLAS thread start-up, cold caches: recorded, it made the
  faster kernel look several times slower for the next thousand queries), the best of
  the other calls is the starting figure. Runs, not alternating calls: at 20k x 128
  numpy's calls right after FAISS calls measured 0.3-7 ms, its steady state 0.13 ms.
- Exploring: once per ``EXPLORE_EVERY x _BURST x`` their cost ratio (capped at 16)
  queries, the other kernel runs a burst of ``_BURST`` queries, so exploring costs about
  1/64 of the time whatever the ratio. A burst, not one call: numpy's first calls after
  a streak of FAISS calls pay for waking BLAS's threads (measured at 20k x 128: 0.2-0.4 ms
  against 0.125 ms back to back), so one call never showed numpy's real cost once FAISS
  had been chosen. The median of the burst's second half replaces the figure when
  lower, else moves the average (the median, not the best call: comparing the other
  kernel's luckiest call with this one's average flip-flopped between them).
- Averaging: a sample counts as at most ``_MAX_STEP`` times the current average. Without
  that, one call preempted for a few ms on a busy machine (seen in the benchmark: a
  0.13 ms kernel recorded at 7 ms) made the faster kernel lose for a thousand queries; a
  lasting slowdown still shows within a few samples.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence
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
_WEIGHT: Final = 0.25
_MAX_RATIO: Final = 16.0
_BURST: Final = 16  # calls per exploration: numpy's first calls wake BLAS's threads
_MAX_STEP: Final = 2.0  # a sample counts as at most this many times the current average
_SETTLED: Final = 16  # calls per kernel and bucket before choosing (first = warm-up)

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


class KernelChooser:
    """Picks the cheaper kernel per shape from measured costs (not thread-safe: one per store)."""

    def __init__(self) -> None:
        # Per bucket: [numpy cost per row, faiss cost per row, calls since the last
        # exploration, numpy calls, faiss calls (both stop at _SETTLED), calls left in the
        # current exploration burst, the kernel it explores].
        self._state: dict[tuple[int, int], list[float]] = {}
        self._bursts: dict[tuple[int, int], list[float]] = {}

    def search(self, matrix: Matrix, query: npt.NDArray[np.float32], k: int) -> Result:
        """Run the chosen kernel on ``matrix`` and record what it cost."""
        rows = matrix.shape[0]
        bucket = (rows.bit_length(), matrix.shape[1])
        state = self._state.get(bucket)
        if state is None:
            state = self._state[bucket] = [math.inf, math.inf, 0.0, 0.0, 0.0, 0.0, 0.0]
        choice, exploring = self._choose(state)
        start = time.perf_counter()
        result = KERNELS[choice](matrix, query, k)
        per_row = (time.perf_counter() - start) / max(rows, 1)
        if exploring:
            self._explored(bucket, state, choice, per_row)
        else:
            self._record(state, choice, per_row)
        return result

    @staticmethod
    def _record(state: list[float], choice: int, per_row: float) -> None:
        calls = state[3 + choice]
        previous = state[choice]
        if calls < _SETTLED:
            state[3 + choice] = calls + 1
            if calls > 0:  # the first call is a warm-up; then the best of a few calls
                state[choice] = min(previous, per_row)
        else:  # one preempted call (a spike of several ms) moves the average by 25% at most
            sample = min(per_row, _MAX_STEP * previous)
            state[choice] = previous + _WEIGHT * (sample - previous)

    def _explored(
        self, bucket: tuple[int, int], state: list[float], choice: int, per_row: float
    ) -> None:
        """Collect a burst; the median of its second half becomes (or moves) the figure."""
        samples = self._bursts.setdefault(bucket, [])
        samples.append(per_row)
        if state[5] > 0:  # more calls of this burst to come
            return
        median = statistics.median(samples[len(samples) // 2 :])
        samples.clear()
        previous = state[choice]
        if median < previous:
            state[choice] = median  # recovered: believe it at once
        else:
            state[choice] = previous + _WEIGHT * (min(median, _MAX_STEP * previous) - previous)

    @staticmethod
    def _choose(state: list[float]) -> tuple[int, bool]:
        if state[3] < _SETTLED:  # each kernel settles in a run of its own (warm BLAS threads)
            return 0, False
        if state[4] < _SETTLED:
            return 1, False
        if state[5] > 0:  # inside an exploration burst
            state[5] -= 1
            return int(state[6]), True
        best = 0 if state[0] <= state[1] else 1
        # Re-measure the other kernel for a burst of _BURST calls once per EXPLORE_EVERY x
        # _BURST x (its cost ratio, at most 16) calls: exploring costs about 1/EXPLORE_EVERY.
        cheap, dear = state[best], state[1 - best]
        ratio = dear / cheap if cheap > 0 else _MAX_RATIO
        since = state[2] + 1
        if since >= EXPLORE_EVERY * _BURST * min(max(ratio, 1.0), _MAX_RATIO):
            state[2] = 0.0
            state[5] = _BURST - 1
            state[6] = 1 - best
            return 1 - best, True
        state[2] = since
        return best, False

    def preferred(self, rows: int, dimension: int) -> str | None:
        """The kernel currently preferred for this shape (``None`` until both were measured)."""
        state = self._state.get((rows.bit_length(), dimension))
        if state is None or state[3] < _SETTLED or state[4] < _SETTLED:
            return None
        return ("numpy", "faiss")[0 if state[0] <= state[1] else 1]
