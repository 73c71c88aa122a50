"""``VectorStore``: the one contract both vector stores keep (docs/contracts/vectors.md).

``VectorIndex`` (FAISS, this process's memory, snapshots on local disk) and
``PgVectorStore`` (Postgres with pgvector, shared by every instance) implement it; the
HTTP routes, ``DataLayer.vectors`` and the ``@inject``-ed services are typed against it,
so which store serves them is a setting (``VECTORS__BACKEND``), not a code change.

Every method is ``async``. Scores are cosine similarities (higher is closer), results are
ordered by score descending then id ascending, and a filter is an exact pre-filter
(:mod:`app.vectors.filters`). ``save()``/``load()`` are the FAISS store's persistence;
on Postgres, where the database is the persistence, they are cheap no-ops.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy.typing as npt

from app.vectors.filters import Filter
from app.vectors.models import BatchItem, VectorMatch, VectorRecord

__all__ = ["VectorStore"]


@runtime_checkable
class VectorStore(Protocol):
    """Cosine-similarity search over string ids in isolated namespaces."""

    @property
    def dimension(self) -> int:
        """The length of every vector this store accepts."""
        ...

    async def upsert(
        self,
        namespace: str,
        vector_id: str,
        vector: npt.ArrayLike,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        """Insert ``vector_id`` or replace its vector and metadata."""
        ...

    async def upsert_many(self, namespace: str, items: Iterable[BatchItem]) -> None:
        """Upsert a batch, validated as a whole first (a rejected batch changes nothing)."""
        ...

    async def upsert_arrays(
        self,
        namespace: str,
        ids: Sequence[str],
        vectors: npt.ArrayLike | Sequence[npt.ArrayLike],
        metadata: Sequence[Mapping[str, Any] | None] | None = None,
    ) -> None:
        """Upsert a batch given as columns: ids, an ``n x dimension`` array, metadata."""
        ...

    async def delete(self, namespace: str, vector_id: str) -> bool:
        """Remove ``vector_id``; ``True`` iff it existed."""
        ...

    async def delete_many(self, namespace: str, ids: Iterable[str]) -> int:
        """Remove every listed id that exists; how many were removed."""
        ...

    async def query(
        self,
        namespace: str,
        vector: npt.ArrayLike,
        top_k: int = 10,
        *,
        filter: Filter | None = None,
    ) -> list[VectorMatch]:
        """The ``min(top_k, matches)`` most similar vectors, best first."""
        ...

    async def get(self, namespace: str, ids: Iterable[str]) -> list[VectorRecord]:
        """The stored records of those ids that exist, in the order asked."""
        ...

    async def count(self, namespace: str) -> int:
        """How many vectors ``namespace`` holds (0 for an unknown one)."""
        ...

    async def namespaces(self) -> list[str]:
        """The namespaces holding at least one vector, sorted."""
        ...

    async def ping(self) -> None:
        """Raise unless the store is open and ready."""
        ...

    async def save(self) -> None:
        """Make what was written durable (FAISS: a snapshot; Postgres: already is)."""
        ...

    async def load(self) -> None:
        """Read the durable state (FAISS: the current snapshot; Postgres: checks it)."""
        ...

    async def close(self) -> None:
        """Release what the store holds; idempotent."""
        ...
