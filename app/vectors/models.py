"""The values the vector index hands out and accepts in batches."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["BatchItem", "VectorMatch", "VectorRecord"]


@dataclass(frozen=True, slots=True)
class VectorMatch:
    """A query result: the id, its cosine similarity to the query (higher is closer), metadata.

    ``metadata`` is a copy: changing it never changes what the index stores.
    """

    id: str
    score: float
    metadata: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class VectorRecord:
    """A vector with its id and metadata.

    As an input to ``upsert_many`` ``vector`` is any sequence of numbers; as returned by
    ``get`` it is a float32 copy of the stored, unit-normalised vector.
    """

    id: str
    vector: npt.ArrayLike
    metadata: Mapping[str, Any] | None = None

    def as_array(self) -> npt.NDArray[np.float32]:
        """The vector as a float32 numpy array (no copy when it already is one)."""
        return np.asarray(self.vector, dtype=np.float32)


# One element of ``upsert_many``: a record, ``(id, vector)`` or ``(id, vector, metadata)``.
BatchItem = (
    VectorRecord | tuple[str, npt.ArrayLike] | tuple[str, npt.ArrayLike, Mapping[str, Any] | None]
)
