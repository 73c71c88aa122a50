"""Exact top-k inner-product kernels, the choice between them per shape, and the tie rule.

Two exact kernels find the same best rows up to float rounding: their float32 scores may
differ in the last bits (up to about 4e-7 measured), and rows with equal or nearly equal
scores may come in any order, or a different few of them be kept at the k-th place (the
tie rule below settles both):

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

The tie rule (:func:`top_k_settled`, :func:`top_k_many`): rows come by score descending,
then by id ascending (the id string, which survives deletes; rows do not), and of rows
tied at the k-th score the smallest ids are kept. The same ids come whichever kernel found
the candidates, one query or a batch, whatever the row order:

- Exact equality of kernel scores cannot find ties: numpy's BLAS scores identical rows up
  to an ulp apart depending on where they sit (blocks of 4 rows, the split between
  threads); FAISS's scores differ from numpy's in the last bits too.
- So a kernel returns ``k + 1`` candidates, and where neighbours among them are at least
  ``TIE_TOLERANCE`` (2^-18, 3.8e-6) apart its scores decide: 9x the largest difference
  measured between two kernels' scores of one row (each within 2.1e-7 of the exact value;
  unit vectors, d = 4 to 16384, 600k scores each), so every kernel and path agrees there.
  The check on ``k + 1`` floats costs about 1 us for k = 10.
- Otherwise the candidates are scored again exactly: float64 products (exact) summed by
  numpy's pairwise sum, row by row, rounded to float32. Identical rows get the same score
  wherever they sit; equal float32 scores are ties; the result carries these scores. A
  near tie inside the top k rescores the k candidates (tens of microseconds); one at the
  k-th place rescores every row within ``TIE_TOLERANCE`` of the k-th score, found by a
  second full product (a kernel hands over only its ``k + 1`` best; :func:`top_k_many`
  reuses its own product). On random unit vectors, 20k x 1536, 3.5% of top-10 queries
  had a near tie inside the top k and 0.5% one at the k-th place; at 20k x 128, 0.5%.
"""

from __future__ import annotations

import heapq
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
    "TIE_TOLERANCE",
    "IdOf",
    "Kernel",
    "KernelChooser",
    "Result",
    "top_k_faiss",
    "top_k_many",
    "top_k_numpy",
    "top_k_of",
    "top_k_settled",
]

EXPLORE_EVERY: Final = 64
_MAX_RATIO: Final = 16.0
_BURST: Final = 16  # calls per exploration: numpy's first calls wake BLAS's threads
_SETTLED: Final = 16  # calls per kernel and bucket before choosing (first = warm-up)
_WINDOW: Final = 15  # recent calls per kernel whose median is its cost

# Kernel scores closer than this are rescored exactly (see the module docstring).
TIE_TOLERANCE: Final = 2.0**-18
_LOOP_GAPS_MAX: Final = 64  # up to this many candidates a Python loop checks the gaps fastest
_RESCORE_CELLS: Final = 1 << 20  # float64 cells per chunk of exact rescoring (8 MiB)

Result = tuple[npt.NDArray[np.intp], npt.NDArray[np.float32]]
Kernel = Callable[[Matrix, npt.NDArray[np.float32], int], Result]
IdOf = Callable[[int], str]  # the id of a row of the matrix searched


def top_k_settled(
    kernel: Kernel, matrix: Matrix, query: npt.NDArray[np.float32], k: int, id_of: IdOf
) -> Result:
    """Rows and scores of the ``k`` best rows (``k <= rows``) by the tie rule, best first.

    ``kernel`` (one of ``KERNELS``, or a ``KernelChooser``'s ``search``) finds ``k + 1``
    candidates. When neighbours among them are all at least ``TIE_TOLERANCE`` apart, its
    first ``k`` rows and scores are the result; otherwise :func:`_break_ties` decides.
    """
    found = kernel(matrix, query, min(k + 1, matrix.shape[0]))
    best, values = found
    if _apart(values):
        return (best[:k], values[:k]) if best.shape[0] > k else found
    return _break_ties(matrix, query, k, found, id_of)


def _break_ties(
    matrix: Matrix,
    query: npt.NDArray[np.float32],
    k: int,
    found: Result,
    id_of: IdOf,
    *,
    scores: npt.NDArray[np.float32] | None = None,
) -> Result:
    """The ``k`` best rows by (score descending, id ascending), rescored exactly.

    ``found`` holds the ``min(k + 1, rows)`` best rows by a kernel's scores, best first,
    ties in any order, with two neighbours less than ``TIE_TOLERANCE`` apart; ``scores``
    are the kernel's scores of every row, if at hand.
    """
    best, values = found
    if best.shape[0] > k and float(values[k - 1]) - float(values[k]) < TIE_TOLERANCE:
        # A near tie at the k-th place: rows beyond the k + 1 may score as much.
        if scores is None:
            scores = matrix @ query
        rows = np.flatnonzero(scores >= values[k - 1] - TIE_TOLERANCE)
    else:
        rows = best[:k]
    exact = _exact_scores(matrix, query, rows)
    keys, listed = exact.tolist(), rows.tolist()
    chosen = heapq.nsmallest(k, range(len(listed)), key=lambda i: (-keys[i], id_of(listed[i])))
    return rows[chosen], exact[chosen]


def _apart(values: npt.NDArray[np.float32]) -> bool:
    """Whether neighbouring scores (descending) all differ by at least ``TIE_TOLERANCE``."""
    if values.shape[0] > _LOOP_GAPS_MAX:
        return bool((values[:-1] - values[1:]).min() >= TIE_TOLERANCE)
    listed = iter(values.tolist())  # about 0.4 us for 11 values; numpy's calls cost 1.5-3 us
    previous = next(listed)
    for value in listed:
        if previous - value < TIE_TOLERANCE:
            return False
        previous = value
    return True


def _exact_scores(
    matrix: Matrix, query: npt.NDArray[np.float32], rows: npt.NDArray[np.intp]
) -> npt.NDArray[np.float32]:
    """``matrix[rows] @ query`` computed the same way for every row, rounded to float32.

    float32 products are exact in float64; numpy sums each contiguous float64 row with the
    same pairwise sum, so identical rows get identical scores (BLAS does not promise that).
    """
    wide = query.astype(np.float64)
    exact = np.empty(rows.shape[0], dtype=np.float32)
    step = max(1, _RESCORE_CELLS // max(matrix.shape[1], 1))
    for start in range(0, rows.shape[0], step):
        part = rows[start : start + step]
        exact[start : start + step] = np.multiply(matrix[part], wide).sum(axis=1)
    return exact


def top_k_numpy(matrix: Matrix, query: npt.NDArray[np.float32], k: int) -> Result:
    """Rows and scores of the ``k`` largest ``matrix @ query``, best first (ties: any order)."""
    return top_k_of(matrix @ query, k)


def top_k_many(matrix: Matrix, queries: Matrix, ks: Sequence[int], id_of: IdOf) -> list[Result]:
    """:func:`top_k_settled` for each row of ``queries`` (its own ``k <= rows``) in one product.

    One pass over ``matrix`` for all queries: concurrent queries of a namespace cost little
    more than one (the single product is bound by memory bandwidth). The same tie rule, so
    the same rows as one query at a time (scores may differ by float rounding).
    """
    scores = queries @ matrix.T
    count = scores.shape[1]
    deepest = min(max(ks) + 1, count)  # one candidate more, to see a tie at the k-th place
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
    # Per query, the first pair of neighbours closer than TIE_TOLERANCE (deepest if none).
    close = values[:, :-1] - values[:, 1:] < TIE_TOLERANCE
    if close.shape[1]:
        first_close = np.where(close.any(axis=1), close.argmax(axis=1), deepest).tolist()
    else:  # one row: nothing to tie with
        first_close = [deepest] * len(ks)
    return [
        (best[row, :k], values[row, :k])
        if first_close[row] >= k
        else _break_ties(
            matrix,
            queries[row],
            k,
            (best[row, : k + 1], values[row, : k + 1]),
            id_of,
            scores=scores[row],
        )
        for row, k in enumerate(ks)
    ]


def top_k_of(scores: npt.NDArray[np.float32], k: int) -> Result:
    """Positions and values of the ``k`` largest ``scores``, best first.

    Which of the positions tied at the k-th value are kept, and the order of tied positions,
    are unspecified (``argpartition`` is not stable): :func:`top_k_settled` decides those.
    """
    count = scores.shape[0]
    if k < count:
        best = np.argpartition(scores, count - k)[count - k :]
        best = best[np.argsort(-scores[best], kind="stable")]
    else:
        best = np.argsort(-scores, kind="stable")
    return best, scores[best]


def top_k_faiss(matrix: Matrix, query: npt.NDArray[np.float32], k: int) -> Result:
    """The same with FAISS's exact kernel (``k`` must not exceed the rows), on one thread.

    Ties come in FAISS's own order, and FAISS keeps its own choice of rows tied at the k-th
    score; :func:`top_k_settled` decides those.

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
