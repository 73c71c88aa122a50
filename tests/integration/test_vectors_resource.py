"""The vectors Resource: loads the snapshot at start, saves at stop, refuses a corrupt one;
read-only, it only loads."""

from __future__ import annotations

from pathlib import Path

import pytest
from dependency_injector import providers

from app.errors import ReadOnlyIndexError, ResourceStartError, SnapshotCorruptError
from app.vectors import VectorIndex
from containers import build_lifecycle, create_container
from containers.accessors import get_vectors
from settings import Settings, load_settings

pytestmark = pytest.mark.integration


def settings_for(tmp_path: Path, **overrides: object) -> Settings:
    return load_settings(
        data_dir=tmp_path / "data",
        faiss={"index_path": tmp_path / "faiss", "dimension": 3},
        log={"level": "WARNING"},
        **overrides,
    )


@pytest.mark.parametrize("mode", ["single_node", "distributed"])
async def test_saved_at_stop_and_loaded_at_start(tmp_path: Path, mode: str, redis_url: str) -> None:
    """What was upserted before a stop is there after the next start, in both modes."""
    settings = settings_for(tmp_path, deployment_mode=mode, redis={"url": redis_url})
    for round_ in range(2):
        container = create_container(settings)
        container.postgres.override(providers.Object(None))  # not what this test is about
        container.database.override(providers.Object(None))
        async with build_lifecycle(container):
            index = await get_vectors(container)
            assert isinstance(index, VectorIndex)
            if round_ == 0:
                await index.upsert("docs", "a", [1.0, 0.0, 0.0], {"k": 1})
            else:
                (match,) = await index.query("docs", [1.0, 0.0, 0.0], 1)
                assert (match.id, match.metadata) == ("a", {"k": 1})
    assert (tmp_path / "faiss" / "CURRENT").exists()


async def test_corrupt_snapshot_fails_the_start(tmp_path: Path) -> None:
    """A damaged snapshot stops the start with SnapshotCorruptError instead of an empty index."""
    settings = settings_for(tmp_path)
    container = create_container(settings)
    container.postgres.override(providers.Object(None))
    container.database.override(providers.Object(None))
    async with build_lifecycle(container):
        await (await get_vectors(container)).upsert("docs", "a", [1.0, 0.0, 0.0])
    manifest = next((tmp_path / "faiss").glob("snapshot-*/manifest.json"))
    manifest.write_text(manifest.read_text().replace('"', "'", 1))
    container = create_container(settings)
    container.postgres.override(providers.Object(None))
    container.database.override(providers.Object(None))
    with pytest.raises(ResourceStartError, match="vectors failed to start") as caught:
        await build_lifecycle(container).start()
    assert isinstance(caught.value.cause, SnapshotCorruptError)


async def test_read_only_resource_loads_and_never_saves(tmp_path: Path) -> None:
    """With ``read_only`` overridden, the resource loads the snapshot, refuses writes and does
    not save at stop (no autosave either, however short the interval)."""
    settings = settings_for(tmp_path)
    container = create_container(settings)
    container.postgres.override(providers.Object(None))
    container.database.override(providers.Object(None))
    async with build_lifecycle(container):
        await (await get_vectors(container)).upsert("docs", "a", [1.0, 0.0, 0.0])
    pointer = (tmp_path / "faiss" / "CURRENT").read_bytes()
    faiss = settings.faiss.model_copy(update={"save_interval_s": 0.01})
    settings = settings.model_copy(update={"faiss": faiss})
    container = create_container(settings)
    container.postgres.override(providers.Object(None))
    container.database.override(providers.Object(None))
    container.vector_layer.read_only.override(providers.Object(True))
    async with build_lifecycle(container):
        index = await get_vectors(container)
        assert index.read_only
        assert await index.count("docs") == 1
        with pytest.raises(ReadOnlyIndexError, match="read_only=True"):
            await index.upsert("docs", "b", [0.0, 1.0, 0.0])
    assert (tmp_path / "faiss" / "CURRENT").read_bytes() == pointer
