"""Vector stores: one contract (``VectorStore``), FAISS for one node, pgvector for many.

``from app.vectors import VectorStore, VectorIndex, VectorMatch``; see
:mod:`app.vectors.protocol` for the contract, :mod:`app.vectors.index` for the FAISS
store, :mod:`app.vectors.pgvector` for the Postgres one, :mod:`app.vectors.filters` for
the filter language and :mod:`app.vectors.snapshot` for FAISS's on-disk format.
"""

from __future__ import annotations

from app.vectors.filters import Filter
from app.vectors.index import VectorIndex
from app.vectors.models import BatchItem, VectorMatch, VectorRecord
from app.vectors.protocol import VectorStore
from app.vectors.validation import InvalidQueryError

__all__ = [
    "BatchItem",
    "Filter",
    "InvalidQueryError",
    "VectorIndex",
    "VectorMatch",
    "VectorRecord",
    "VectorStore",
]
