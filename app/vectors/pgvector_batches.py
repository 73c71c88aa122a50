"""Batches for ``PgVectorStore``: validated whole (V3), metadata encoded once as JSON text.

The FAISS store keeps metadata as dicts (a JSON round trip copies them); Postgres gets
text, so each row's metadata is checked and encoded in one pass (``encode_metadata``), and
the batch itself carries none. Large batches are checked on a worker thread (V7).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any, Final

import numpy.typing as npt

from app.errors import InvalidIdentifierError
from app.vectors.validation import (
    Batch,
    check_id_collection,
    check_ids,
    encode_metadata,
    prepare_batch,
)

__all__ = ["INLINE_MAX_CELLS", "prepare", "prepared_batch"]

# Batches of more floats than this are checked on a worker thread, not the event loop
# (10k x 1536 took about 25 ms of checks and copies).
INLINE_MAX_CELLS: Final = 1 << 20

Vectors = npt.ArrayLike | Sequence[npt.ArrayLike]
MetadataColumn = Sequence[Mapping[str, Any] | None] | None


def prepare(
    ids: Sequence[str], vectors: Vectors, metadata: MetadataColumn, dimension: int
) -> tuple[Batch, list[str | None]]:
    """The validated batch (a repeated id: its last row) and each kept row's metadata as
    JSON text; nothing is returned unless the whole batch is valid."""
    check_id_collection(ids)
    if metadata is not None and len(metadata) != len(ids):
        msg = f"metadata must have one entry per id ({len(ids)}), got {len(metadata)}"
        raise InvalidIdentifierError(msg)
    check_ids(ids)  # ids first, as prepare_batch does: errors name the first problem
    encoded: list[str | None] = (
        [None] * len(ids)
        if metadata is None
        else [encode_metadata(item, row=row) for row, item in enumerate(metadata)]
    )
    batch = prepare_batch(ids, vectors, None, dimension)
    if len(batch.ids) != len(ids):  # repeated ids: keep the metadata of the rows kept
        last = {vector_id: row for row, vector_id in enumerate(ids)}
        encoded = [encoded[last[vector_id]] for vector_id in batch.ids]
    return batch, encoded


async def prepared_batch(
    ids: Sequence[str], vectors: Vectors, metadata: MetadataColumn, dimension: int
) -> tuple[Batch, list[str | None]]:
    """:func:`prepare`, on a worker thread for a batch of more than ``INLINE_MAX_CELLS``."""
    if len(ids) * dimension <= INLINE_MAX_CELLS:
        return prepare(ids, vectors, metadata, dimension)
    return await asyncio.to_thread(prepare, ids, vectors, metadata, dimension)
