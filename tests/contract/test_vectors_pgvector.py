"""The pgvector store's own statements of contract C: V9, V11 on indexed namespaces, V12
against FAISS, V13 (the HNSW index and its threshold) and V14 (what fails the start)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np
import pytest

from app.errors import VectorStoreUnavailableError
from app.vectors import VectorIndex, VectorMatch
from app.vectors.pgvector import PgVectorStore
from tests.contract.vector_stores import drop_schema, pgvector_pool, pgvector_store

DIM = 8
ROWS = 400


@pytest.fixture
async def schema(pgvector_uri: str, unique_name: str) -> AsyncIterator[str]:
    """A schema name of this test on the session's pgserver, dropped after."""
    yield unique_name
    await drop_schema(pgvector_uri, unique_name)


def unit_rows(rows: np.ndarray) -> np.ndarray:
    result: np.ndarray = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    return result


def exact_top(
    data: np.ndarray, ids: list[str], query: np.ndarray, keep: np.ndarray, k: int
) -> list[str]:
    """The true top-k ids among the rows ``keep`` marks, by (score desc, id asc)."""
    scores = unit_rows(data) @ (query / np.linalg.norm(query))
    ranked = sorted((-scores[i], ids[i]) for i in np.flatnonzero(keep))
    return [vector_id for _, vector_id in ranked[:k]]


async def index_names(uri: str, schema: str) -> list[str]:
    connection = await asyncpg.connect(uri)
    try:
        rows = await connection.fetch(
            "SELECT indexname FROM pg_indexes WHERE schemaname = $1 AND indexname LIKE '%hnsw'",
            schema,
        )
    finally:
        await connection.close()
    return [row["indexname"] for row in rows]


async def test_v9_acknowledged_writes_are_in_postgres_and_nothing_is_on_disk(
    pgvector_uri: str, schema: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """V9: what a call returned is read by a store opened afterwards on its own pool;
    save() and load() change nothing, and no file is written locally."""
    monkeypatch.chdir(tmp_path)
    async with pgvector_store(pgvector_uri, schema, DIM) as first:
        await first.upsert_many("docs", [("a", np.ones(DIM), {"k": 1}), ("b", -np.ones(DIM))])
        assert await first.delete("docs", "b") is True
        await first.save()
        await first.load()
    async with pgvector_store(pgvector_uri, schema, DIM) as second:
        [record] = await second.get("docs", ["a", "b"])
        assert (record.id, record.metadata) == ("a", {"k": 1})
        assert await second.namespaces() == ["docs"]
    assert not await asyncio.to_thread(lambda: list(tmp_path.iterdir()))


async def test_v11_filters_are_exact_on_an_indexed_namespace_at_any_selectivity(
    pgvector_uri: str, schema: str
) -> None:
    """V11 with an HNSW index present: 1 %, 5 % (the index holds too few: exact fallback)
    and 50 % selectivity all give min(top_k, matches) rows, the true top-k of the matches."""
    rng = np.random.default_rng(11)
    data = rng.standard_normal((ROWS, DIM))
    ids = [f"v{i:03d}" for i in range(ROWS)]
    groups = np.array([0 if i % 100 < 1 else 1 if i % 100 < 6 else 2 for i in range(ROWS)])
    halves = np.arange(ROWS) % 2
    metadata = [{"g": int(g), "h": int(h)} for g, h in zip(groups, halves, strict=True)]
    options: dict[str, Any] = {"hnsw_min_rows": 100, "exact_max_rows": 8, "filtered_ef_search": 10}
    async with pgvector_store(pgvector_uri, schema, DIM, **options) as store:
        await store.bulk_load("ns", ids, data, metadata)
        assert await index_names(pgvector_uri, schema) != []
        for query in rng.standard_normal((10, DIM)):
            for spec, keep in (
                ({"g": 0}, groups == 0),  # 4 rows: at most exact_max_rows, exact scan
                ({"g": 1}, groups == 1),  # 20 rows: through the index, too few: exact again
            ):
                got = await store.query("ns", query, 10, filter=spec)
                assert [m.id for m in got] == exact_top(data, ids, query, keep, 10)
            got = await store.query("ns", query, 10, filter={"h": 1})
            truth = exact_top(data, ids, query, halves == 1, 10)
            assert len(got) == 10
            assert all(m.id in set(np.array(ids)[halves == 1]) for m in got)
            assert len({m.id for m in got} & set(truth)) >= 9  # approximate above the threshold


async def test_v12_both_stores_give_the_same_ids_and_scores(
    pgvector_uri: str, schema: str, tmp_path: Path
) -> None:
    """V12: the same data gives the same ids in the same order, scores within 1e-5, ties
    (copies of one vector) settled by id, filtered and unfiltered."""
    rng = np.random.default_rng(12)
    data = rng.standard_normal((60, DIM))
    data[10:20] = data[5]  # ties
    ids = [f"id{(i * 37) % 60:02d}" for i in range(60)]
    metadata = [{"odd": i % 2} for i in range(60)]
    faiss = VectorIndex(tmp_path / "index", DIM)
    try:
        await faiss.upsert_arrays("ns", ids, data, metadata)
        async with pgvector_store(pgvector_uri, schema, DIM) as pg:
            await pg.upsert_arrays("ns", ids, data, metadata)
            for query in [data[5], *rng.standard_normal((10, DIM))]:
                for spec in (None, {"odd": 1}):
                    ours: list[VectorMatch] = await faiss.query("ns", query, 15, filter=spec)
                    theirs = await pg.query("ns", query, 15, filter=spec)
                    assert [m.id for m in theirs] == [m.id for m in ours]
                    np.testing.assert_allclose(
                        [m.score for m in theirs], [m.score for m in ours], atol=1e-5
                    )
    finally:
        await faiss.close()


@pytest.mark.parametrize("session_ef_search", [None, 50])
async def test_v13_search_is_exact_below_the_threshold_and_indexed_above(
    pgvector_uri: str, schema: str, session_ef_search: int | None
) -> None:
    """V13: no HNSW index below hnsw_min_rows; upserts that cross it build one in the
    background, after which unfiltered queries keep recall@10 >= 0.9 on this small data,
    with ef_search set per transaction (pgvector's default is 40) or as the pool
    connections' default (50)."""
    rng = np.random.default_rng(13)
    data = rng.standard_normal((ROWS, DIM))
    ids = [f"v{i}" for i in range(ROWS)]
    async with pgvector_store(
        pgvector_uri,
        schema,
        DIM,
        session_ef_search=session_ef_search,
        hnsw_min_rows=ROWS,
        ef_search=50,
    ) as store:
        assert (store._search.session_ef_search == 50) is (session_ef_search is not None)
        await store.upsert_arrays("ns", ids[:-1], data[:-1])
        assert await index_names(pgvector_uri, schema) == []
        await store.upsert("ns", ids[-1], data[-1])
        # The build runs in the background: wait for the store's own build task.
        await asyncio.gather(*store._indexes.builds.values())
        assert len(await index_names(pgvector_uri, schema)) == 1
        hits = 0
        queries = rng.standard_normal((20, DIM))
        for query in queries:
            got = await store.query("ns", query, 10)
            hits += len(
                {m.id for m in got} & set(exact_top(data, ids, query, np.ones(ROWS, bool), 10))
            )
        assert hits / (10 * len(queries)) >= 0.9


async def test_v13_bulk_load_builds_the_index_before_it_returns(
    pgvector_uri: str, schema: str
) -> None:
    """bulk_load into an empty namespace copies the rows, then builds the index once; into
    a non-empty one it upserts (replacing rows) and the index is kept."""
    rng = np.random.default_rng(14)
    data = rng.standard_normal((ROWS, DIM))
    ids = [f"v{i}" for i in range(ROWS)]
    async with pgvector_store(pgvector_uri, schema, DIM, hnsw_min_rows=ROWS) as store:
        await store.bulk_load("ns", ids, data, [{"i": i} for i in range(ROWS)])
        assert len(await index_names(pgvector_uri, schema)) == 1
        await store.bulk_load("ns", ["v0", "new"], data[:2] * -1, [{"i": -1}, None])
        assert await store.count("ns") == ROWS + 1
        [record] = await store.get("ns", ["v0"])
        assert record.metadata == {"i": -1}
        np.testing.assert_allclose(record.as_array(), -unit_rows(data[:1])[0], atol=1e-6)
        assert len(await index_names(pgvector_uri, schema)) == 1


async def test_namespaces_with_any_valid_name_are_safe_tables(
    pgvector_uri: str, schema: str
) -> None:
    """V5: names with '-' and '_' or 64 characters map to their own tables, never SQL."""
    names = ["a-b", "a_b", "x" * 64, "0-drop-table", "9"]
    async with pgvector_store(pgvector_uri, schema, DIM) as store:
        for position, name in enumerate(names):
            await store.upsert(name, "id", np.eye(DIM)[position])
        assert await store.namespaces() == sorted(names)
        for position, name in enumerate(names):
            [match] = await store.query(name, np.eye(DIM)[position])
            assert match.score == pytest.approx(1.0)


async def test_v14_a_dimension_pgvector_cannot_index_fails_the_start(
    pgvector_uri: str, schema: str
) -> None:
    """V14: 2001 dimensions on pgvector 0.6.2 is refused at open, naming the limit, the
    version and the way out."""
    async with pgvector_pool(pgvector_uri) as pool:
        store = PgVectorStore(pool, 2001, schema=schema, address="pgserver-test")
        with pytest.raises(VectorStoreUnavailableError) as caught:
            await store.open()
    message = str(caught.value)
    for part in ("2001", "at most 2000", "0.6.2", "pgserver-test", "VECTORS__BACKEND=faiss"):
        assert part in message


async def test_v14_a_schema_of_another_dimension_fails_the_start(
    pgvector_uri: str, schema: str
) -> None:
    """A schema whose namespaces were stored with another dimension is refused at open."""
    async with pgvector_store(pgvector_uri, schema, DIM) as store:
        await store.upsert("ns", "a", np.ones(DIM))
    with pytest.raises(VectorStoreUnavailableError, match=r"ns \(8\)"):
        async with pgvector_store(pgvector_uri, schema, DIM * 2):
            pass


@pytest.mark.integration
async def test_v14_a_server_without_pgvector_fails_the_start(
    postgres_dsn: str, unique_name: str
) -> None:
    """V14 on the loopback Postgres 15 (no pgvector): open names the server, 'none' found
    and the way out; nothing is created there."""
    async with pgvector_pool(postgres_dsn) as pool:
        store = PgVectorStore(pool, DIM, schema=unique_name, address="postgresql://u:***@lo/x")
        with pytest.raises(VectorStoreUnavailableError) as caught:
            await store.open()
        created = await pool.fetchval(
            "SELECT count(*) FROM pg_namespace WHERE nspname = $1", unique_name
        )
    message = str(caught.value)
    for part in ("postgresql://u:***@lo/x", "found version: none", "VECTORS__BACKEND=faiss"):
        assert part in message
    assert created == 0
