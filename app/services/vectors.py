"""Vector use cases: upsert, batch upsert, query, get, delete."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from dependency_injector.wiring import Provide, inject

from app.vectors import BatchItem, VectorMatch, VectorRecord, VectorStore
from containers.application import Container

__all__ = ["delete_vector", "get_vector", "query_vectors", "upsert_vector", "upsert_vectors"]


@inject
async def upsert_vector(
    namespace: str,
    vector_id: str,
    vector: Sequence[float],
    metadata: Mapping[str, Any] | None = None,
    *,
    index: VectorStore = Provide[Container.vectors],
) -> None:
    """Insert or replace one vector (in place; no rebuild)."""
    await index.upsert(namespace, vector_id, vector, metadata)


def _item_id(item: BatchItem) -> str:
    return item.id if isinstance(item, VectorRecord) else item[0]


@inject
async def upsert_vectors(
    namespace: str,
    items: Sequence[BatchItem],
    *,
    index: VectorStore = Provide[Container.vectors],
) -> int:
    """Insert or replace a batch, validated as a whole first; returns how many ids were
    written (a repeated id counts once: its last item wins)."""
    await index.upsert_many(namespace, items)
    return len({_item_id(item) for item in items})


@inject
async def query_vectors(
    namespace: str,
    vector: Sequence[float],
    top_k: int = 10,
    filter: Mapping[str, Any] | None = None,
    *,
    index: VectorStore = Provide[Container.vectors],
) -> list[VectorMatch]:
    """The ``top_k`` most similar vectors, best first, among those matching ``filter``."""
    return await index.query(namespace, vector, top_k, filter=filter)


@inject
async def get_vector(
    namespace: str,
    vector_id: str,
    *,
    index: VectorStore = Provide[Container.vectors],
) -> VectorRecord | None:
    """One stored vector (unit-normalised) with its metadata, or ``None``."""
    records = await index.get(namespace, [vector_id])
    return records[0] if records else None


@inject
async def delete_vector(
    namespace: str,
    vector_id: str,
    *,
    index: VectorStore = Provide[Container.vectors],
) -> bool:
    """Delete one vector; ``True`` if it existed."""
    return await index.delete(namespace, vector_id)
