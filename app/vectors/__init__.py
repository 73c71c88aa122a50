"""A FAISS-era vector index without the rebuilds: namespaces, metadata, safe snapshots.

``from app.vectors import VectorIndex, VectorMatch``; see :mod:`app.vectors.index` for the
API, :mod:`app.vectors.filters` for the filter language and :mod:`app.vectors.snapshot`
for the on-disk format.
"""

from __future__ import annotations

from app.vectors.filters import Filter
from app.vectors.index import VectorIndex
from app.vectors.models import BatchItem, VectorMatch, VectorRecord
from app.vectors.validation import InvalidQueryError

__all__ = [
    "BatchItem",
    "Filter",
    "InvalidQueryError",
    "VectorIndex",
    "VectorMatch",
    "VectorRecord",
]
