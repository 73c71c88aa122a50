"""The vectors layer: the FAISS index, loaded at start and saved at stop (or read-only)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from dependency_injector import containers, providers

from app.vectors import VectorIndex
from containers.declarations import Managed, ping_method
from settings import FaissSettings, Settings

__all__ = ["VectorsContainer", "vector_index"]

# The index saves a full snapshot at stop, which for a large index takes a while.
VECTORS_STOP_TIMEOUT_S = 120.0


async def vector_index(
    settings: FaissSettings, *, read_only: bool = False
) -> AsyncIterator[VectorIndex]:
    """Load the snapshot (a corrupt one fails the start), save periodically and at stop.

    ``read_only``: load and verify the snapshot beside a running writer, without its lock,
    autosave or the save at stop; every write raises ``ReadOnlyIndexError`` (the probe's mode).
    """
    index = VectorIndex(
        settings.index_path, settings.dimension, threads=settings.threads, read_only=read_only
    )
    try:
        await index.load()
    except BaseException:
        await index.close()
        raise
    if settings.save_interval_s > 0 and not read_only:
        index.start_autosave(settings.save_interval_s)
    try:
        yield index
    finally:
        try:
            if not read_only:
                await index.save()
        finally:
            await index.close()


class VectorsContainer(containers.DeclarativeContainer):
    """``index`` is the process's ``VectorIndex``; override ``read_only`` with ``True`` for a
    reader that verifies the snapshot and never writes (``python -m app check``)."""

    settings = providers.Dependency(instance_of=Settings)
    read_only = providers.Object(False)
    index = providers.Resource(vector_index, settings.provided.faiss, read_only=read_only)
    index_lifecycle = Managed(
        "index",
        name="vectors",
        ping=ping_method,
        address=lambda settings: str(settings.faiss.index_path),
        stop_timeout_s=VECTORS_STOP_TIMEOUT_S,
    )
