"""A tiny in-memory ``VectorStore``: the override example for tests, held to the same contract.

It runs the contract suite (tests/contract/test_vectors_contract.py) beside FAISS and
pgvector, so a test that overrides the store with it sees the real stores' behaviour:
the same validation (it uses the stores' own checks), exact cosine search in float64
over float32-stored unit vectors, filters before ranking, ties by id.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from app.errors import BackendClosedError
from app.vectors import BatchItem, VectorMatch, VectorRecord
from app.vectors.filters import Filter, compile_filter
from app.vectors.validation import (
    check_id,
    check_id_collection,
    check_metadata,
    check_namespace,
    check_top_k,
    normalised_vector,
    prepare_batch,
    split_items,
)

Stored = tuple[npt.NDArray[np.float32], dict[str, Any] | None]


class FakeVectorIndex:
    """Brute-force cosine search over dicts; records every call's name in ``calls``."""

    def __init__(self, dimension: int) -> None:
        self.dimension = dimension
        self.data: dict[str, dict[str, Stored]] = {}
        self.calls: list[str] = []
        self.closed = False

    def _call(self, name: str) -> None:
        if self.closed:
            raise BackendClosedError("fake vector index is closed")
        self.calls.append(name)

    async def upsert(
        self,
        namespace: str,
        vector_id: str,
        vector: npt.ArrayLike,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        self._call("upsert")
        check_namespace(namespace)
        checked_id, checked = check_id(vector_id), check_metadata(metadata)
        unit = normalised_vector(vector, self.dimension).copy()
        self.data.setdefault(namespace, {})[checked_id] = (unit, checked)

    async def upsert_many(self, namespace: str, items: Iterable[BatchItem]) -> None:
        self._call("upsert_many")
        ids, vectors, metadata = split_items(items)
        await self.upsert_arrays(namespace, ids, vectors, metadata)

    async def upsert_arrays(
        self,
        namespace: str,
        ids: Sequence[str],
        vectors: npt.ArrayLike | Sequence[npt.ArrayLike],
        metadata: Sequence[Mapping[str, Any] | None] | None = None,
    ) -> None:
        self._call("upsert_arrays")
        check_namespace(namespace)
        batch = prepare_batch(check_id_collection(ids), vectors, metadata, self.dimension)
        if not batch.ids:
            return
        units = (batch.vectors * batch.scale[:, None]).astype(np.float32)
        stored = self.data.setdefault(namespace, {})
        for row, vector_id in enumerate(batch.ids):
            stored[vector_id] = (units[row].copy(), batch.metadata[row])

    async def query(
        self,
        namespace: str,
        vector: npt.ArrayLike,
        top_k: int = 10,
        *,
        filter: Filter | None = None,
    ) -> list[VectorMatch]:
        self._call("query")
        check_namespace(namespace)
        k = check_top_k(top_k)
        where = compile_filter(filter)
        query = normalised_vector(vector, self.dimension).astype(np.float64)
        scored = [
            VectorMatch(vid, float(vec.astype(np.float64) @ query), check_metadata(meta))
            for vid, (vec, meta) in self.data.get(namespace, {}).items()
            if where is None or where(meta)
        ]
        # The real stores' order: score descending, then id ascending (ties settled by id).
        return sorted(scored, key=lambda match: (-match.score, match.id))[:k]

    async def get(self, namespace: str, ids: Iterable[str]) -> list[VectorRecord]:
        self._call("get")
        check_namespace(namespace)
        stored = self.data.get(namespace, {})
        checked = [check_id(i, row=row) for row, i in enumerate(check_id_collection(ids))]
        return [
            VectorRecord(i, stored[i][0].copy(), check_metadata(stored[i][1]))
            for i in checked
            if i in stored
        ]

    async def delete(self, namespace: str, vector_id: str) -> bool:
        return await self.delete_many(namespace, [vector_id]) == 1

    async def delete_many(self, namespace: str, ids: Iterable[str]) -> int:
        self._call("delete")
        check_namespace(namespace)
        checked = [check_id(i, row=row) for row, i in enumerate(check_id_collection(ids))]
        stored = self.data.get(namespace, {})
        return sum(stored.pop(vector_id, None) is not None for vector_id in checked)

    async def count(self, namespace: str) -> int:
        self._call("count")
        return len(self.data.get(check_namespace(namespace), {}))

    async def namespaces(self) -> list[str]:
        self._call("namespaces")
        return sorted(name for name, stored in self.data.items() if stored)

    async def ping(self) -> None:
        self._call("ping")

    async def save(self) -> None:
        self._call("save")

    async def load(self) -> None:
        self._call("load")

    async def close(self) -> None:
        self.closed = True
