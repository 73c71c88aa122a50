"""Request and response bodies of the ``/v1`` API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "BatchResult",
    "BatchUpsert",
    "EventIn",
    "EventOut",
    "LockRequest",
    "LockState",
    "Match",
    "QueryRequest",
    "QueryResult",
    "SessionIn",
    "SessionOut",
    "VectorIn",
    "VectorItem",
    "VectorOut",
    "VectorRef",
]

FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
Ttl = Annotated[float, Field(gt=0, le=365 * 24 * 3600, allow_inf_nan=False)]
MAX_BATCH = 10_000


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class VectorIn(Strict):
    vector: list[FiniteFloat] = Field(min_length=1)
    metadata: dict[str, Any] | None = None


class VectorItem(VectorIn):
    id: str = Field(min_length=1)


class BatchUpsert(Strict):
    items: list[VectorItem] = Field(min_length=1, max_length=MAX_BATCH)


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


class QueryRequest(Strict):
    vector: list[FiniteFloat] = Field(min_length=1)
    top_k: int = Field(default=10, ge=1, le=1000)
    filter: dict[str, Any] | None = None


class Match(BaseModel):
    id: str
    score: float
    metadata: dict[str, Any] | None


class QueryResult(BaseModel):
    matches: list[Match]


class EventIn(Strict):
    type: str = Field(min_length=1, max_length=255)
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
