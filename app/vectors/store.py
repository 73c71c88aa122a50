"""The synchronous core of one namespace: a contiguous matrix of unit vectors and its ids.

Rows ``0 .. size-1`` of a float32 matrix hold the vectors; the matrix grows by doubling.
``row -> id`` is a list, ``id -> row`` a dict, metadata a list beside the rows. A delete
moves the last row into the freed slot (O(dimension)); an upsert of a known id overwrites
its row in place. Nothing here is thread-safe: the async wrapper holds a lock per
namespace around every call.

Search is exact, with the cheaper of numpy and FAISS kernels for the shape (``kernels.py``).
Results come by score descending, then id ascending, and of rows tied at the k-th score
the smallest ids are kept: the same ids whichever kernel ran, for single, batched and
filtered queries, before and after deletes move rows (the tie rule of ``kernels.py``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from app.vectors.filters import Predicate
from app.vectors.kernels import KernelChooser, Result, top_k_many, top_k_settled
from app.vectors.models import VectorMatch
from app.vectors.validation import Matrix, Metadata

__all__ = ["PER_QUERY_MAX_BATCH", "NamespaceStore", "StoredRecord", "copy_metadata"]

_MIN_CAPACITY: Final = 16
# Up to this many queries, one scan per query beats one matrix product: BLAS's product of a
# few rows cost 2.3-2.7 ms at 20k x 384 on an idle machine (0.53 ms a scan) and about 9 ms
# beside a loaded HTTP server (1.2-1.7 ms a scan).
PER_QUERY_MAX_BATCH: Final = 4


def _copy_json(value: Any) -> Any:
    if type(value) is dict:
        return {key: _copy_json(item) for key, item in value.items()}
    if type(value) is list:
        return [_copy_json(item) for item in value]
    return value  # str, int, float, bool, None: immutable


def copy_metadata(metadata: Metadata | None) -> dict[str, Any] | None:
    """An independent copy of stored metadata (validated JSON: only dicts and lists to copy).

    About 10x cheaper than a JSON round trip on small objects.
    """
    return None if metadata is None else {key: _copy_json(v) for key, v in metadata.items()}


@dataclass(frozen=True, slots=True)
class StoredRecord:
    """A stored vector (a copy, unit norm) with its id and metadata."""

    id: str
    vector: npt.NDArray[np.float32]
    metadata: Metadata | None


class NamespaceStore:
    """Vectors of one namespace; callers pass validated, unit-norm float32 rows."""

    def __init__(self, dimension: int) -> None:
        self.dimension = dimension
        self._matrix: Matrix = np.empty((_MIN_CAPACITY, dimension), dtype=np.float32)
        self._ids: list[str] = []
        self._rows: dict[str, int] = {}
        self._metadata: list[Metadata | None] = []
        self._kernels = KernelChooser()

    @classmethod
    def adopt(
        cls, matrix: Matrix, ids: list[str], metadata: list[Metadata | None]
    ) -> NamespaceStore:
        """Build a store around ``matrix`` (rows = ``len(ids)``, extra rows are capacity)."""
        store = cls(matrix.shape[1])
        store._matrix = matrix
        store._ids = ids
        store._rows = {vector_id: row for row, vector_id in enumerate(ids)}
        store._metadata = metadata
        return store

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, vector_id: str) -> bool:
        return vector_id in self._rows

    @property
    def ids(self) -> list[str]:
        """Ids in row order (a copy)."""
        return list(self._ids)

    def vectors(self) -> Matrix:
        """A read-only view of the live rows; valid until the next change."""
        view = self._matrix[: len(self._ids)]
        view.flags.writeable = False
        return view

    def metadata(self) -> list[Metadata | None]:
        """Metadata in row order (a shallow copy of the list; entries are never mutated)."""
        return list(self._metadata)

    def _reserve(self, size: int) -> None:
        capacity = self._matrix.shape[0]
        if size <= capacity:
            return
        grown = np.empty((max(size, 2 * capacity), self.dimension), dtype=np.float32)
        grown[: len(self._ids)] = self._matrix[: len(self._ids)]
        self._matrix = grown

    def upsert(
        self,
        ids: Sequence[str],
        vectors: Matrix,
        scale: Matrix,
        metadata: Sequence[Metadata | None],
        positions: dict[str, int] | None = None,
    ) -> int:
        """Insert or replace rows ``vectors[i] * scale[i]`` (unit norm); ``ids`` unique.

        ``positions`` (``id -> i``, as ``Batch`` has it) becomes the id map of an empty
        store as it is (the store takes it over). Returns how many ids were new.
        """
        size = len(self._ids)
        if size == 0 and positions is not None and len(positions) == len(ids):
            self._reserve(len(ids))
            np.multiply(vectors, scale[:, None], out=self._matrix[: len(ids)])
            self._ids = list(ids)
            self._rows = positions
            self._metadata = list(metadata)
            return len(ids)
        if self._rows and (len(ids) == 1 or not self._rows.keys().isdisjoint(ids)):
            found = [self._rows.get(vector_id) for vector_id in ids]
            old_positions = [position for position, row in enumerate(found) if row is not None]
        else:
            found, old_positions = [], []
        if len(ids) == 1 and old_positions:
            row = self._rows[ids[0]]
            np.multiply(vectors[0], scale[0], out=self._matrix[row])
            self._metadata[row] = metadata[0]
            return 0
        if old_positions:
            old_rows = [self._rows[ids[position]] for position in old_positions]
            self._matrix[old_rows] = vectors[old_positions] * scale[old_positions, None]
            for position, row in zip(old_positions, old_rows, strict=True):
                self._metadata[row] = metadata[position]
        added = len(ids) - len(old_positions)
        if added == 0:
            return 0
        self._reserve(size + added)
        end = size + added
        if not old_positions:
            new_ids = list(ids)
            np.multiply(vectors, scale[:, None], out=self._matrix[size:end])
            self._metadata.extend(metadata)
        else:
            new_positions = [position for position, row in enumerate(found) if row is None]
            new_ids = [ids[position] for position in new_positions]
            np.multiply(
                vectors[new_positions], scale[new_positions, None], out=self._matrix[size:end]
            )
            self._metadata.extend(metadata[position] for position in new_positions)
        self._rows.update(zip(new_ids, range(size, end), strict=True))
        self._ids.extend(new_ids)
        return added

    def upsert_one(
        self, vector_id: str, unit: npt.NDArray[np.float32], metadata: Metadata | None
    ) -> bool:
        """Insert or replace one unit-norm row; ``True`` iff the id was new."""
        row = self._rows.get(vector_id)
        if row is not None:
            self._matrix[row] = unit
            self._metadata[row] = metadata
            return False
        size = len(self._ids)
        self._reserve(size + 1)
        self._matrix[size] = unit
        self._ids.append(vector_id)
        self._rows[vector_id] = size
        self._metadata.append(metadata)
        return True

    def delete(self, ids: Iterable[str]) -> int:
        """Remove ids (unknown ones are ignored); each costs one row copy. Returns the count."""
        removed = 0
        for vector_id in ids:
            row = self._rows.pop(vector_id, None)
            if row is None:
                continue
            last = len(self._ids) - 1
            if row != last:
                moved = self._ids[last]
                self._matrix[row] = self._matrix[last]
                self._ids[row] = moved
                self._metadata[row] = self._metadata[last]
                self._rows[moved] = row
            self._ids.pop()
            self._metadata.pop()
            removed += 1
        return removed

    def get(self, ids: Iterable[str]) -> list[StoredRecord]:
        """Stored records of the ids that exist, in the order asked (copies of the vectors)."""
        found: list[StoredRecord] = []
        for vector_id in ids:
            row = self._rows.get(vector_id)
            if row is not None:
                vector = self._matrix[row].copy()
                found.append(StoredRecord(vector_id, vector, self._metadata[row]))
        return found

    def search(
        self, query: npt.NDArray[np.float32], top_k: int, where: Predicate | None
    ) -> list[VectorMatch]:
        """The ``top_k`` rows most similar to the unit ``query`` among those ``where`` keeps.

        Best first; equal scores by id, and of rows tied at the last place the smallest ids.
        Metadata in the results are copies: callers may change them freely.
        """
        size = len(self._ids)
        if size == 0:
            return []
        ids = self._ids
        if where is None:
            best, scores = top_k_settled(
                self._kernels.search, self._matrix[:size], query, min(top_k, size), ids.__getitem__
            )
            return self._matches(best, scores)
        kept = [row for row, meta in enumerate(self._metadata) if where(meta)]
        if not kept:
            return []
        rows = np.asarray(kept, dtype=np.intp)
        best, scores = top_k_settled(
            self._kernels.search,
            self._matrix[rows],
            query,
            min(top_k, len(kept)),
            lambda position: ids[kept[position]],
        )
        return self._matches(rows[best], scores)

    def rank_many(self, queries: Matrix, top_k: Sequence[int]) -> list[Result]:
        """Rows and scores of each unfiltered query's best matches: one scan per query up to
        ``PER_QUERY_MAX_BATCH`` queries, else one matrix product for all (the same rows, ties
        by id as in ``search``).

        Only numpy work (and, on a near tie, a sort of the tied ids), so that a worker thread
        running it holds the GIL as little as possible; ``matches`` turns each result into
        ``VectorMatch``es on the caller's thread.
        """
        size = len(self._ids)
        if size == 0:
            empty = np.empty(0, dtype=np.intp), np.empty(0, dtype=np.float32)
            return [empty for _ in top_k]
        matrix, id_of = self._matrix[:size], self._ids.__getitem__
        if len(top_k) <= PER_QUERY_MAX_BATCH:
            search = self._kernels.search
            return [
                top_k_settled(search, matrix, query, min(k, size), id_of)
                for query, k in zip(queries, top_k, strict=True)
            ]
        return top_k_many(matrix, queries, [min(k, size) for k in top_k], id_of)

    def matches(self, ranked: Result) -> list[VectorMatch]:
        """The ``VectorMatch``es of a ``rank_many`` result (valid until the next change)."""
        return self._matches(*ranked)

    def _matches(
        self, rows: npt.NDArray[np.intp], scores: npt.NDArray[np.float32]
    ) -> list[VectorMatch]:
        ids, metadata = self._ids, self._metadata
        return [
            VectorMatch(ids[row], score, copy_metadata(metadata[row]))
            for row, score in zip(rows.tolist(), scores.tolist(), strict=True)
        ]
