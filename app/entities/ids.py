"""New entity and event ids: random (version 4) UUIDs from the OS's generator, as ``uuid4``
makes them. They are stored and must stay unique even if something seeds the ``random``
module (test frameworks do, process-wide)."""

from __future__ import annotations

import os
from uuid import UUID

__all__ = ["new_ids"]


def new_ids(count: int) -> list[UUID]:
    """``count`` new ids from ONE read of the OS's generator (``uuid4`` reads once per id; a
    batch of 100 creates needs 200)."""
    raw = os.urandom(16 * count)
    return [UUID(bytes=raw[start : start + 16], version=4) for start in range(0, 16 * count, 16)]
