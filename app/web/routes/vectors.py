"""``/v1/vectors``: upsert, batch upsert, query, get, delete."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from app.services import vectors as service
from app.web.errors import ERROR_RESPONSES, ApiError, ErrorBody
from app.web.schemas import (
    BatchResult,
    BatchUpsert,
    Match,
    QueryRequest,
    QueryResult,
    VectorIn,
    VectorOut,
    VectorRef,
)

__all__ = ["router"]

router = APIRouter(prefix="/v1/vectors", tags=["vectors"], responses=ERROR_RESPONSES)
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "no such vector"}
}


@router.post("/{namespace}:batch")
async def upsert_batch(namespace: str, body: BatchUpsert) -> BatchResult:
    """Insert or replace many vectors; the batch is validated as a whole before any change."""
    items = [(item.id, item.vector, item.metadata) for item in body.items]
    count = await service.upsert_vectors(namespace, items)
    return BatchResult(namespace=namespace, upserted=count)


@router.post("/{namespace}:query")
async def query(namespace: str, body: QueryRequest) -> QueryResult:
    """The ``top_k`` most similar vectors (cosine), best first, optionally filtered by metadata."""
    matches = await service.query_vectors(namespace, body.vector, body.top_k, body.filter)
    return QueryResult(
        matches=[Match(id=m.id, score=m.score, metadata=m.metadata) for m in matches]
    )


@router.put("/{namespace}/{vector_id}")
async def upsert(namespace: str, vector_id: str, body: VectorIn) -> VectorRef:
    """Insert or replace one vector and its metadata."""
    await service.upsert_vector(namespace, vector_id, body.vector, body.metadata)
    return VectorRef(namespace=namespace, id=vector_id)


@router.get("/{namespace}/{vector_id}", responses=NOT_FOUND)
async def get(namespace: str, vector_id: str) -> VectorOut:
    """One stored vector (unit-normalised) with its metadata."""
    record = await service.get_vector(namespace, vector_id)
    if record is None:
        raise ApiError(404, "not_found", f"no vector {vector_id!r} in namespace {namespace!r}")
    return VectorOut(
        namespace=namespace,
        id=record.id,
        vector=record.as_array().tolist(),
        metadata=None if record.metadata is None else dict(record.metadata),
    )


@router.delete("/{namespace}/{vector_id}", status_code=204, responses=NOT_FOUND)
async def delete(namespace: str, vector_id: str) -> Response:
    """Delete one vector."""
    if not await service.delete_vector(namespace, vector_id):
        raise ApiError(404, "not_found", f"no vector {vector_id!r} in namespace {namespace!r}")
    return Response(status_code=204)
