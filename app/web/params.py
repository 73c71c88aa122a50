"""Path parameters shared by the routers, with the limits the backends enforce."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path

__all__ = ["Namespace", "StateKey", "VectorId"]

NAMESPACE_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
VECTOR_ID_MAX_CHARS = 128  # at most 4 bytes a character: within the index's 512-byte bound
KEY_MAX_CHARS = 256  # within the state backend's 1024-byte bound

Namespace = Annotated[str, Path(pattern=NAMESPACE_PATTERN)]
VectorId = Annotated[str, Path(min_length=1, max_length=VECTOR_ID_MAX_CHARS)]
StateKey = Annotated[str, Path(min_length=1, max_length=KEY_MAX_CHARS)]
