"""``/v1/vectors``: upsert, batch upsert, query, get, delete.

Built per app, because request vectors must have the index's dimension and the schema says so.
(No ``from __future__ import annotations`` here: the handlers' annotations are the dynamic
models, which FastAPI must see as objects.)
"""

from typing import Any, cast

from fastapi import APIRouter, Response

from app.services import vectors as service
from app.vectors import VectorRecord
from app.web.errors import ERROR_RESPONSES, ApiError, ErrorBody
from app.web.json_route import JSONRoute
from app.web.params import VECTOR_ID_PATH, Namespace, VectorId
from app.web.schemas import (
    BatchResult,
    Match,
    QueryResult,
    VectorOut,
    VectorRef,
    vector_models,
)

__all__ = ["build_router", "vector_out"]

NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "no such vector"}
}


def _missing(namespace: str, vector_id: str) -> ApiError:
    return ApiError(404, "not_found", f"no vector {vector_id!r} in namespace {namespace!r}")


def vector_out(namespace: str, record: VectorRecord) -> VectorOut:
    """The response for one stored vector, built without validating the index's data again."""
    return VectorOut.model_construct(
        namespace=namespace,
        id=record.id,
        vector=record.as_array().tolist(),
        metadata=cast("dict[str, Any] | None", record.metadata),  # the index's own copy
    )


def build_router(dimension: int) -> APIRouter:
    """The vectors router for an index of ``dimension``.

    A vector id may contain ``/`` (``docs/readme.md``), as the index allows: the id is the
    rest of the path, so every id a batch stored can be read and deleted one by one.
    """
    models = vector_models(dimension)
    router = APIRouter(
        prefix="/v1/vectors", tags=["vectors"], responses=ERROR_RESPONSES, route_class=JSONRoute
    )

    @router.post("/{namespace}:batch")
    async def upsert_batch(namespace: Namespace, body: models.batch) -> BatchResult:  # type: ignore[name-defined]
        """Insert or replace many vectors; the batch is validated as a whole before any change."""
        items = [(item.id, item.vector, item.metadata) for item in body.items]
        count = await service.upsert_vectors(namespace, items)
        return BatchResult(namespace=namespace, upserted=count)

    @router.post("/{namespace}:query")
    async def query(namespace: Namespace, body: models.query) -> QueryResult:  # type: ignore[name-defined]
        """The ``top_k`` most similar vectors (cosine), best first, filtered by metadata."""
        matches = await service.query_vectors(namespace, body.vector, body.top_k, body.filter)
        # The index hands out validated data (metadata already copies): no second validation.
        return QueryResult.model_construct(
            matches=[
                Match.model_construct(id=m.id, score=m.score, metadata=m.metadata) for m in matches
            ]
        )

    @router.put("/{namespace}/" + VECTOR_ID_PATH)
    async def upsert(namespace: Namespace, vector_id: VectorId, body: models.single) -> VectorRef:  # type: ignore[name-defined]
        """Insert or replace one vector and its metadata."""
        await service.upsert_vector(namespace, vector_id, body.vector, body.metadata)
        return VectorRef(namespace=namespace, id=vector_id)

    @router.get("/{namespace}/" + VECTOR_ID_PATH, responses=NOT_FOUND)
    async def get(namespace: Namespace, vector_id: VectorId) -> VectorOut:
        """One stored vector (unit-normalised) with its metadata."""
        record = await service.get_vector(namespace, vector_id)
        if record is None:
            raise _missing(namespace, vector_id)
        return vector_out(namespace, record)

    @router.delete("/{namespace}/" + VECTOR_ID_PATH, status_code=204, responses=NOT_FOUND)
    async def delete(namespace: Namespace, vector_id: VectorId) -> Response:
        """Delete one vector."""
        if not await service.delete_vector(namespace, vector_id):
            raise _missing(namespace, vector_id)
        return Response(status_code=204)

    return router
