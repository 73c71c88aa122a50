"""Benchmark case ``vectors``: the VectorIndex against raw FAISS/numpy and the original design.

At 20k vectors, d=1536 and d=128, in one run:

- delete one id and re-upsert one id, in operations/s, against a reimplementation of the
  original wrapper (rebuild the whole ``IndexFlatIP`` on every delete or re-upsert; bar
  ours/baseline >= 1000) and against ``IndexIDMap2.remove_ids`` (+ ``add_with_ids``; bar >= 1);
- one top-10 query, in ms, against the faster of ``IndexFlatIP.search`` and numpy
  ``X @ q`` + ``argpartition`` (bar ours/best <= 1.1), medians of calls interleaved one by
  one;
- a batch upsert of 20k, in ms, against the honest peer, a wrapper keeping string ids:
  ``IndexIDMap2.add_with_ids`` of the normalised matrix plus a Python dict from string id
  to label (bar ours/baseline <= 1.5); bare ``IndexFlatIP.add`` (a memcpy, no ids) is a
  reference row without a bar;
- save + load (d=1536 only), in ms, against ``np.save`` + fsync + ``np.load`` of the matrix
  alone (bar <= 1.2: a snapshot is durable, so the peer is too); without the fsync it is a
  reference row.
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from app.vectors import VectorIndex
from benchmarks.core import BenchConfig, Measurement, case

SIZE = 20_000
NAME = "vectors"


class RebuildingIndex:
    """The original design: every delete or re-upsert rebuilds the whole flat index."""

    def __init__(self, dimension: int) -> None:
        self.dimension = dimension
        self.vectors: dict[str, np.ndarray] = {}
        self.ids: list[str] = []
        self.index = faiss.IndexFlatIP(dimension)

    def _rebuild(self) -> None:
        self.ids = list(self.vectors)
        matrix = np.stack([self.vectors[i] for i in self.ids]).astype(np.float32)
        faiss.normalize_L2(matrix)
        self.index = faiss.IndexFlatIP(self.dimension)
        self.index.add(matrix)

    def upsert(self, vector_id: str, vector: np.ndarray) -> None:
        existed = vector_id in self.vectors
        self.vectors[vector_id] = vector
        if existed:
            self._rebuild()
        else:
            row = vector.astype(np.float32).reshape(1, -1).copy()
            faiss.normalize_L2(row)
            self.index.add(row)
            self.ids.append(vector_id)

    def delete(self, vector_id: str) -> bool:
        if self.vectors.pop(vector_id, None) is None:
            return False
        self._rebuild()
        return True


def _best_ms(fn: Callable[[], object], count: int, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(count):
            fn()
        best = min(best, (time.perf_counter() - start) / count)
    return best * 1e3


def _row(
    metric: str,
    unit: str,
    ours: float,
    baseline: float,
    name: str,
    check: str,
    bar: float,
    **extra: Any,
) -> Measurement:
    return Measurement(NAME, metric, unit, ours, baseline, name, check, bar, extra)  # type: ignore[arg-type]


async def _shape(dimension: int, quick: bool, workdir: Path) -> list[Measurement]:
    rng = np.random.default_rng(dimension)
    raw = rng.standard_normal((SIZE, dimension)).astype(np.float32)
    unit = raw.copy()
    faiss.normalize_L2(unit)
    ids = [f"doc-{i}" for i in range(SIZE)]
    queries = rng.standard_normal((64, dimension)).astype(np.float32)
    faiss.normalize_L2(queries)
    rows: list[Measurement] = []
    tag = f"d={dimension}"

    # Batch upsert of 20k vs IndexFlatIP.add of the normalised matrix.
    ours_add = float("inf")
    for attempt in range(2 if quick else 4):
        index = VectorIndex(workdir / f"add-{dimension}-{attempt}", dimension)
        start = time.perf_counter()
        await index.upsert_arrays("bench", ids, raw)
        ours_add = min(ours_add, (time.perf_counter() - start) * 1e3)
        await index.close()
    raw_add = _best_ms(lambda: faiss.IndexFlatIP(dimension).add(unit), 1, 2 if quick else 4)

    def idmap_add() -> None:
        # What a thin wrapper keeping string ids does: labels for the rows, a dict back to ids.
        mapped = faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))
        labels = {vector_id: label for label, vector_id in enumerate(ids)}
        mapped.add_with_ids(unit, np.fromiter(labels.values(), np.int64, len(labels)))

    idmap_ms = _best_ms(idmap_add, 1, 2 if quick else 4)
    rows.append(
        _row(
            f"upsert 20k {tag}",
            "ms",
            ours_add,
            idmap_ms,
            "IndexIDMap2.add_with_ids+dict",
            "<=",
            1.5,
        )
    )
    rows.append(
        Measurement(NAME, f"upsert 20k {tag}", "ms", ours_add, raw_add, "IndexFlatIP.add (ref)")
    )

    index = VectorIndex(workdir / f"index-{dimension}", dimension)
    await index.upsert_arrays("bench", ids, raw)

    # One top-10 query vs the faster raw kernel.
    flat = faiss.IndexFlatIP(dimension)
    flat.add(unit)
    count, rounds = (50, 3) if quick else (200, 5)
    position = iter(range(10**9))

    def next_query() -> np.ndarray:
        query: np.ndarray = queries[next(position) % len(queries)]
        return query

    def numpy_search() -> object:
        scores = unit @ next_query()
        top = np.argpartition(scores, SIZE - 10)[SIZE - 10 :]
        return top[np.argsort(-scores[top])]

    faiss.omp_set_num_threads(1)
    for _ in range(64):  # settles the index's kernel choice for this shape (kernels.py)
        await index.query("bench", next_query(), 10)
    samples: dict[str, list[float]] = {"ours": [], "numpy": [], "faiss": []}

    async def ours_search() -> object:
        return await index.query("bench", next_query(), 10)

    def faiss_search() -> object:
        return flat.search(next_query().reshape(1, -1), 10)

    sides = [("ours", ours_search), ("numpy", numpy_search), ("faiss", faiss_search)]
    # Call by call, in a freshly shuffled order each time, medians compared: a burst of load
    # from elsewhere hits all three alike (rounds of 200 calls each swung the ratio
    # 0.95-1.19x), and each side follows each other one equally often (a fixed rotation
    # put ours after FAISS two times in three).
    order = random.Random(0)
    for _ in range(count * rounds):
        for name, search in order.sample(sides, len(sides)):
            start = time.perf_counter()
            result = search()
            if asyncio.iscoroutine(result):
                await result
            samples[name].append((time.perf_counter() - start) * 1e3)
    ours_q, numpy_ms, faiss_ms = (statistics.median(samples[name]) for name, _ in sides)
    # Last: FAISS's OpenMP threads spin after a parallel search and slow numpy's BLAS.
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    faiss_all_ms = _best_ms(lambda: flat.search(next_query().reshape(1, -1), 10), count, rounds)
    faiss.omp_set_num_threads(1)
    best = min(faiss_ms, faiss_all_ms, numpy_ms)
    best_name = {
        faiss_ms: "IndexFlatIP.search (1 thread)",
        faiss_all_ms: "IndexFlatIP.search",
        numpy_ms: "numpy X@q+argpartition",
    }[best]
    rows.append(
        _row(
            f"query top-10 {tag}",
            "ms",
            ours_q,
            best,
            best_name,
            "<=",
            1.1,
            faiss_1_thread_ms=faiss_ms,
            faiss_all_threads_ms=faiss_all_ms,
            numpy_ms=numpy_ms,
        )
    )

    # Delete one id / re-upsert one id: ours vs the rebuilding wrapper and IndexIDMap2.
    naive = RebuildingIndex(dimension)
    naive.vectors = {vector_id: raw[i] for i, vector_id in enumerate(ids)}
    naive._rebuild()
    idmap = faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))
    idmap.add_with_ids(unit, np.arange(SIZE, dtype=np.int64))
    victims = list(range(0, SIZE, SIZE // 400))[: (100 if quick else 400)]
    slow = 2 if quick else 4

    start = time.perf_counter()
    for i in victims:
        await index.delete("bench", ids[i])
    ours_del = len(victims) / (time.perf_counter() - start)
    start = time.perf_counter()
    for i in victims[:slow]:
        naive.delete(ids[i])
    naive_del = slow / (time.perf_counter() - start)
    start = time.perf_counter()
    for i in victims[: slow * 5]:
        idmap.remove_ids(np.array([i], dtype=np.int64))  # type: ignore[arg-type]
    idmap_del = slow * 5 / (time.perf_counter() - start)
    rows.append(
        _row(f"delete one {tag}", "ops/s", ours_del, naive_del, "rebuild-on-delete", ">=", 1000)
    )
    rows.append(
        _row(f"delete one {tag}", "ops/s", ours_del, idmap_del, "IndexIDMap2.remove_ids", ">=", 1)
    )

    targets = [i for i in range(1, SIZE, SIZE // 400) if i not in set(victims)][: len(victims)]
    start = time.perf_counter()
    for i in targets:
        await index.upsert("bench", ids[i], raw[(i + 7) % SIZE])
    ours_up = len(targets) / (time.perf_counter() - start)
    start = time.perf_counter()
    for i in targets[:slow]:
        naive.upsert(ids[i], raw[(i + 7) % SIZE])
    naive_up = slow / (time.perf_counter() - start)
    start = time.perf_counter()
    for i in targets[: slow * 5]:
        label = np.array([i], dtype=np.int64)
        idmap.remove_ids(label)  # type: ignore[arg-type]
        idmap.add_with_ids(unit[(i + 7) % SIZE].reshape(1, -1), label)
    idmap_up = slow * 5 / (time.perf_counter() - start)
    rows.append(
        _row(f"re-upsert one {tag}", "ops/s", ours_up, naive_up, "rebuild-on-upsert", ">=", 1000)
    )
    rows.append(
        _row(f"re-upsert one {tag}", "ops/s", ours_up, idmap_up, "IndexIDMap2 remove+add", ">=", 1)
    )

    if dimension == 1536:
        rows += await _persistence(index, unit, workdir, quick)
    await index.close()
    return rows


async def _persistence(
    index: VectorIndex, unit: np.ndarray, workdir: Path, quick: bool
) -> list[Measurement]:
    await index.upsert_arrays("bench", [f"doc-{i}" for i in range(SIZE)], unit)
    reader = VectorIndex(index.index_path, index.dimension)
    rounds = 2 if quick else 4
    ours, saves, loads = float("inf"), [], []
    for _ in range(rounds):
        start = time.perf_counter()
        await index.save()
        middle = time.perf_counter()
        await reader.load()
        end = time.perf_counter()
        saves.append((middle - start) * 1e3)
        loads.append((end - middle) * 1e3)
        ours = min(ours, (end - start) * 1e3)
    assert await reader.count("bench") == SIZE
    await reader.close()
    path = workdir / "plain.npy"

    def plain() -> None:
        np.save(path, unit)
        np.load(path, allow_pickle=False)

    def plain_fsync() -> None:
        with path.open("wb") as handle:
            np.save(handle, unit)
            handle.flush()
            os.fsync(handle.fileno())
        np.load(path, allow_pickle=False)

    baseline = _best_ms(plain, 1, rounds)
    synced = _best_ms(plain_fsync, 1, rounds)
    return [
        _row(
            "save+load 20k d=1536",
            "ms",
            ours,
            synced,
            "np.save+fsync+np.load",
            "<=",
            1.2,
            save_ms_median=statistics.median(saves),
            load_ms_median=statistics.median(loads),
        ),
        Measurement(NAME, "save+load 20k d=1536", "ms", ours, baseline, "np.save+np.load (ref)"),
    ]


@case("vectors")
async def vectors(config: BenchConfig) -> list[Measurement]:
    """The VectorIndex at 20k vectors, d=1536 and 128, against raw kernels and the rebuilds."""
    rows: list[Measurement] = []
    with tempfile.TemporaryDirectory(prefix="bench-vectors-") as workdir:
        for dimension in (1536, 128):
            rows += await _shape(dimension, config.quick, Path(workdir))
    return rows
