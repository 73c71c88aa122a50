"""The vectors layer: the FAISS index, loaded at start and saved at stop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import structlog
from dependency_injector import containers, providers

from app.vectors import VectorIndex
from settings import FaissSettings, Settings

__all__ = ["VectorsContainer", "vector_index"]

log = structlog.get_logger(__name__)


async def _autosave(index: VectorIndex, interval_s: float) -> None:
    while True:
        await asyncio.sleep(interval_s)
        try:
            await index.save()
        except Exception:
            log.exception("vectors.autosave_failed", interval_s=interval_s)


async def vector_index(settings: FaissSettings) -> AsyncIterator[VectorIndex]:
    """Load the snapshot (a corrupt one fails the start), save periodically and at stop."""
    index = VectorIndex(settings.index_path, settings.dimension, threads=settings.threads)
    try:
        await index.load()
    except BaseException:
        await index.close()
        raise
    autosave = None
    if settings.save_interval_s > 0:
        autosave = asyncio.create_task(_autosave(index, settings.save_interval_s))
    try:
        yield index
    finally:
        if autosave is not None:
            autosave.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await autosave
        try:
            await index.save()
        finally:
            await index.close()


class VectorsContainer(containers.DeclarativeContainer):
    """``index`` is the process's ``VectorIndex``."""

    settings = providers.Dependency(instance_of=Settings)
    index = providers.Resource(vector_index, settings.provided.faiss)
