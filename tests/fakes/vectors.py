"""A tiny in-memory stand-in for ``VectorIndex``: the override example for tests."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from app.errors import DimensionMismatchError
from app.vectors import BatchItem, VectorMatch, VectorRecord


class FakeVectorIndex:
    """Brute-force cosine search over plain lists; records every call in ``calls``."""

    def __init__(self, dimension: int) -> None:
        self.dimension = dimension
        self.data: dict[str, dict[str, tuple[list[float], dict[str, Any] | None]]] = {}
        self.calls: list[str] = []

    def _unit(self, vector: Sequence[float]) -> list[float]:
        if len(vector) != self.dimension:
            raise DimensionMismatchError(self.dimension, len(vector))
        norm = math.sqrt(sum(x * x for x in vector))
        return [x / norm for x in vector]

    async def upsert(
        self,
        namespace: str,
        vector_id: str,
        vector: Sequence[float],
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        self.calls.append("upsert")
        meta = None if metadata is None else dict(metadata)
        self.data.setdefault(namespace, {})[vector_id] = (self._unit(vector), meta)

    async def upsert_many(self, namespace: str, items: Iterable[BatchItem]) -> None:
        self.calls.append("upsert_many")
        for item in items:
            assert isinstance(item, tuple)
            vector_id, vector, *rest = item
            await self.upsert(namespace, vector_id, list(vector), rest[0] if rest else None)  # type: ignore[arg-type]

    async def query(
        self,
        namespace: str,
        vector: Sequence[float],
        top_k: int = 10,
        *,
        filter: Mapping[str, Any] | None = None,
    ) -> list[VectorMatch]:
        self.calls.append("query")
        query = self._unit(vector)
        scored = [
            VectorMatch(vid, sum(a * b for a, b in zip(vec, query, strict=True)), meta)
            for vid, (vec, meta) in self.data.get(namespace, {}).items()
            if not filter or all((meta or {}).get(k) == v for k, v in filter.items())
        ]
        # The real index's order: score descending, then id ascending (ties settled by id).
        return sorted(scored, key=lambda match: (-match.score, match.id))[:top_k]

    async def get(self, namespace: str, ids: Iterable[str]) -> list[VectorRecord]:
        self.calls.append("get")
        stored = self.data.get(namespace, {})
        return [VectorRecord(i, stored[i][0], stored[i][1]) for i in ids if i in stored]

    async def delete(self, namespace: str, vector_id: str) -> bool:
        self.calls.append("delete")
        return self.data.get(namespace, {}).pop(vector_id, None) is not None

    async def ping(self) -> None:
        self.calls.append("ping")
