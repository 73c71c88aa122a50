"""Request and response bodies of the ``/v1`` API."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, create_model

from app.web.params import VECTOR_ID_MAX_CHARS

__all__ = [
    "BatchResult",
    "EventIn",
    "EventOut",
    "LockRequest",
    "LockState",
    "Match",
    "QueryResult",
    "SessionIn",
    "SessionOut",
    "VectorModels",
    "VectorOut",
    "VectorRef",
    "vector_models",
]

FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
Ttl = Annotated[float, Field(ge=0.001, le=365 * 24 * 3600, allow_inf_nan=False)]
MAX_BATCH = 10_000
# The HTTP API takes event types of ASCII words, so that 255 characters are 255 bytes.
EVENT_TYPE_PATTERN = r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


@dataclass(frozen=True)
class VectorModels:
    """Request bodies whose vectors have exactly the index's dimension (shown in the schema)."""

    single: type[BaseModel]
    batch: type[BaseModel]
    query: type[BaseModel]


def vector_models(dimension: int) -> VectorModels:
    """The vector request models for an index of ``dimension``."""
    vector = Annotated[list[FiniteFloat], Field(min_length=dimension, max_length=dimension)]
    metadata = Annotated[dict[str, Any] | None, Field(default=None)]
    single = create_model("VectorIn", __base__=Strict, vector=(vector, ...), metadata=metadata)
    item = create_model(
        "VectorItem",
        __base__=Strict,
        id=(str, Field(min_length=1, max_length=VECTOR_ID_MAX_CHARS)),
        vector=(vector, ...),
        metadata=metadata,
    )
    batch = create_model(
        "BatchUpsert",
        __base__=Strict,
        items=(list[item], Field(min_length=1, max_length=MAX_BATCH)),
    )
    query = create_model(
        "QueryRequest",
        __base__=Strict,
        vector=(vector, ...),
        top_k=(int, Field(default=10, ge=1, le=1000)),
        filter=(dict[str, Any] | None, None),
    )
    return VectorModels(single, batch, query)


class VectorRef(BaseModel):
    namespace: str
    id: str


class BatchResult(BaseModel):
    namespace: str
    upserted: int


class VectorOut(BaseModel):
    namespace: str
    id: str
    vector: list[float]
    metadata: dict[str, Any] | None


class Match(BaseModel):
    id: str
    score: float
    metadata: dict[str, Any] | None


class QueryResult(BaseModel):
    matches: list[Match]


class EventIn(Strict):
    type: str = Field(min_length=1, max_length=255, pattern=EVENT_TYPE_PATTERN)
    resource: str
    key: str
    payload: dict[str, Any] = Field(default_factory=dict)
    source: str = "api"
    version: int | None = None


class EventOut(BaseModel):
    id: str
    type: str
    timestamp: datetime


class SessionIn(Strict):
    data: dict[str, Any]
    ttl_seconds: Ttl | None = None


class SessionOut(BaseModel):
    id: str
    data: dict[str, Any]


class LockRequest(Strict):
    ttl_seconds: Ttl = 30.0


class LockState(BaseModel):
    key: str
    owner: str
    ttl_seconds: float
