"""The vectors layer: the FAISS index, loaded at start and saved at stop."""

from __future__ import annotations

from collections.abc import AsyncIterator

from dependency_injector import containers, providers

from app.vectors import VectorIndex
from settings import FaissSettings, Settings

__all__ = ["VectorsContainer", "vector_index"]


async def vector_index(settings: FaissSettings) -> AsyncIterator[VectorIndex]:
    """Load the snapshot (a corrupt one fails the start), save periodically and at stop."""
    index = VectorIndex(settings.index_path, settings.dimension, threads=settings.threads)
    try:
        await index.load()
    except BaseException:
        await index.close()
        raise
    if settings.save_interval_s > 0:
        index.start_autosave(settings.save_interval_s)
    try:
        yield index
    finally:
        try:
            await index.save()
        finally:
            await index.close()


class VectorsContainer(containers.DeclarativeContainer):
    """``index`` is the process's ``VectorIndex``."""

    settings = providers.Dependency(instance_of=Settings)
    index = providers.Resource(vector_index, settings.provided.faiss)
