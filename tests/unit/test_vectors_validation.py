"""Bad input to VectorIndex: typed errors naming the field, and the index left unchanged."""

from __future__ import annotations

from collections import UserDict
from collections.abc import AsyncIterator
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import pytest

from app.errors import (
    BackendClosedError,
    DimensionMismatchError,
    InvalidIdentifierError,
    InvalidVectorError,
    NotStartedError,
)
from app.vectors import InvalidQueryError, VectorIndex

DIM = 4


@pytest.fixture
async def index(tmp_path: Path) -> AsyncIterator[VectorIndex]:
    """An index of dimension 4 holding two vectors in namespace 'ns'."""
    vectors = VectorIndex(tmp_path / "index", DIM)
    await vectors.upsert("ns", "a", [1, 0, 0, 0], {"k": 1})
    await vectors.upsert("ns", "b", [0, 1, 0, 0], {"k": 2})
    yield vectors
    await vectors.close()


async def state(index: VectorIndex) -> list[tuple[str, list[float], Any]]:
    records = await index.get("ns", ["a", "b", "c"])
    return [(r.id, np.asarray(r.vector).tolist(), r.metadata) for r in records]


async def expect_unchanged(index: VectorIndex, before: list[tuple[str, list[float], Any]]) -> None:
    assert await state(index) == before
    assert await index.count("ns") == 2
    assert await index.namespaces() == ["ns"]


@pytest.mark.parametrize("vector", [[1, 0, 0], [1, 0, 0, 0, 0], []])
async def test_wrong_dimension_is_typed_and_changes_nothing(
    index: VectorIndex, vector: list[float]
) -> None:
    """A vector of the wrong length raises DimensionMismatchError with expected and got."""
    before = await state(index)
    with pytest.raises(DimensionMismatchError) as info:
        await index.upsert("ns", "c", vector)
    assert info.value.expected == DIM
    assert info.value.got == len(vector)
    assert f"expected {DIM}" in str(info.value)
    assert isinstance(info.value, ValueError)
    await expect_unchanged(index, before)


async def test_wrong_dimension_in_batch_names_the_row(index: VectorIndex) -> None:
    """A ragged batch names the first row of the wrong length and changes nothing."""
    before = await state(index)
    with pytest.raises(DimensionMismatchError, match="at row 1") as info:
        await index.upsert_many("ns", [("c", [1, 1, 1, 1]), ("d", [1, 1]), ("e", [1, 1, 1, 1])])
    assert info.value.row == 1
    await expect_unchanged(index, before)


async def test_query_with_wrong_dimension_is_typed(index: VectorIndex) -> None:
    """A query vector of the wrong length raises DimensionMismatchError."""
    with pytest.raises(DimensionMismatchError, match="dimension 2, expected 4"):
        await index.query("ns", [1, 0])


@pytest.mark.parametrize(
    ("vector", "needle"),
    [
        ([float("nan"), 0, 0, 1], "NaN or inf"),
        ([float("inf"), 0, 0, 1], "NaN or inf"),
        ([-float("inf"), 0, 0, 1], "NaN or inf"),
        ([0, 0, 0, 0], "all zeros"),
        (["x", "y", "z", "w"], "real numbers"),
        ([True, False, True, False], "real numbers"),
        ([1 + 1j, 0, 0, 0], "real numbers"),
    ],
)
async def test_invalid_vector_is_typed_and_changes_nothing(
    index: VectorIndex, vector: list[Any], needle: str
) -> None:
    """NaN, inf, zero and non-numeric vectors raise InvalidVectorError."""
    before = await state(index)
    with pytest.raises(InvalidVectorError, match=needle):
        await index.upsert("ns", "a", vector, {"k": 9})
    await expect_unchanged(index, before)


async def test_invalid_row_in_batch_names_the_row_and_rejects_the_batch(index: VectorIndex) -> None:
    """One NaN row among good rows rejects the whole batch and names the row."""
    before = await state(index)
    items: list[Any] = [("a", [0, 0, 1, 0]), ("c", [0, 0, 0, 1]), ("d", [np.nan, 1, 1, 1])]
    with pytest.raises(InvalidVectorError, match="row 2"):
        await index.upsert_many("ns", items)
    with pytest.raises(InvalidVectorError, match="row 1 is all zeros"):
        await index.upsert_arrays("ns", ["a", "c"], np.array([[1, 0, 0, 0], [0, 0, 0, 0]]))
    await expect_unchanged(index, before)


@pytest.mark.parametrize(
    ("vector_id", "needle"),
    [
        ("", "non-empty str"),
        (123, "non-empty str"),
        (None, "non-empty str"),
        ("x" * 513, "at most 512 UTF-8 bytes"),
        ("é" * 257, "at most 512 UTF-8 bytes"),
        ("\ud800", "valid UTF-8"),
    ],
)
async def test_bad_id_is_typed_and_changes_nothing(
    index: VectorIndex, vector_id: Any, needle: str
) -> None:
    """Empty, non-str, oversized or unencodable ids raise InvalidIdentifierError (vector_id)."""
    before = await state(index)
    with pytest.raises(InvalidIdentifierError, match=needle) as info:
        await index.upsert("ns", vector_id, [1, 1, 1, 1])
    assert "vector_id" in str(info.value)
    with pytest.raises(InvalidIdentifierError, match="row 1"):
        await index.upsert_arrays("ns", ["c", vector_id], [[1, 1, 1, 1], [1, 1, 1, 1]])
    with pytest.raises(InvalidIdentifierError):
        await index.delete("ns", vector_id)
    await expect_unchanged(index, before)


async def test_longest_id_is_accepted(index: VectorIndex) -> None:
    """An id of exactly 512 UTF-8 bytes is accepted (the limit is inclusive)."""
    await index.upsert("ns", "é" * 256, [1, 1, 1, 1])
    assert await index.count("ns") == 3


@pytest.mark.parametrize(
    ("metadata", "needle"),
    [
        ({"s": {1, 2}}, "must be JSON"),
        ({"o": object()}, "must be JSON"),
        ({"f": float("nan")}, "finite number"),
        ({1: "int key"}, "keys must be str"),
        ({"nested": {2: "x"}}, "keys must be str"),
        (["not", "a", "dict"], "must be a dict"),
        ({"big": "x" * 70_000}, "at most 65536 bytes"),
    ],
)
async def test_non_json_metadata_is_typed_and_changes_nothing(
    index: VectorIndex, metadata: Any, needle: str
) -> None:
    """Metadata that is not a JSON object raises InvalidIdentifierError naming metadata."""
    before = await state(index)
    with pytest.raises(InvalidIdentifierError, match=needle) as info:
        await index.upsert("ns", "a", [0, 0, 1, 0], metadata)
    assert "metadata" in str(info.value)
    await expect_unchanged(index, before)


@pytest.mark.parametrize("namespace", ["../x", "a/b", "..", "", "A", "x" * 65, "-x", "a b", 7])
async def test_bad_namespace_is_typed_and_changes_nothing(
    index: VectorIndex, namespace: Any
) -> None:
    """Names outside [a-z0-9][a-z0-9_-]{0,63} (path traversal included) are rejected everywhere."""
    before = await state(index)
    calls = [
        index.upsert(namespace, "a", [1, 1, 1, 1]),
        index.upsert_many(namespace, [("a", [1, 1, 1, 1])]),
        index.query(namespace, [1, 1, 1, 1]),
        index.delete(namespace, "a"),
        index.count(namespace),
        index.get(namespace, ["a"]),
    ]
    for call in calls:
        with pytest.raises(InvalidIdentifierError, match=r"namespace must match"):
            await call
    await expect_unchanged(index, before)


@pytest.mark.parametrize(
    ("query_filter", "needle"),
    [
        ({"k": {"$gt": 1}}, "unknown filter operator '\\$gt'"),
        ({"k": {"$in": 1}}, "needs a list"),
        ({"k": {"x": 1}}, "not an operator"),
        ({"k": {}}, "empty dict"),
        (["k", 1], "must be a dict"),
        ({"k": {1, 2}}, "must be JSON"),
        ({"$or": [{"k": 1}, {"k": 2}]}, "operators such as '\\$or' belong inside a condition"),
        ({"k": 1, "$and": [{"k": 1}]}, "got \\['\\$and'\\]"),
    ],
)
async def test_bad_filter_is_typed(index: VectorIndex, query_filter: Any, needle: str) -> None:
    """Unknown operators and malformed filters raise InvalidQueryError before any search."""
    with pytest.raises(InvalidQueryError, match=needle) as info:
        await index.query("ns", [1, 0, 0, 0], filter=query_filter)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("top_k", [0, -1, True, 1.5, "3", 100_001])
async def test_bad_top_k_is_typed(index: VectorIndex, top_k: Any) -> None:
    """top_k outside 1..100000 or not an int raises InvalidQueryError naming top_k."""
    with pytest.raises(InvalidQueryError, match="top_k must be an int"):
        await index.query("ns", [1, 0, 0, 0], top_k)


async def test_bad_batch_item_shape_is_typed(index: VectorIndex) -> None:
    """An item that is not a record or a 2/3-tuple raises InvalidVectorError naming its position."""
    before = await state(index)
    junk: list[Any] = [("c", [1, 1, 1, 1]), "junk"]
    with pytest.raises(InvalidVectorError, match=r"items\[1\]"):
        await index.upsert_many("ns", junk)
    await expect_unchanged(index, before)


async def test_metadata_count_must_match_ids(index: VectorIndex) -> None:
    """upsert_arrays with fewer metadata entries than ids is rejected."""
    with pytest.raises(InvalidIdentifierError, match="one entry per id"):
        await index.upsert_arrays("ns", ["c", "d"], [[1, 1, 1, 1], [1, 0, 1, 0]], [None])
    with pytest.raises(InvalidVectorError, match="one row per id"):
        await index.upsert_arrays("ns", ["c", "d"], [[1, 1, 1, 1]])


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"dimension": 0}, "dimension must be a positive int"),
        ({"dimension": True}, "dimension must be a positive int"),
        ({"dimension": 4, "threads": -1}, "threads must be an int >= 0"),
        ({"dimension": 4, "metric": "l2"}, "metric must be 'cosine'"),
    ],
)
def test_constructor_validates_arguments(tmp_path: Path, kwargs: Any, needle: str) -> None:
    """Bad constructor arguments raise ValueError at once, naming the argument."""
    with pytest.raises(ValueError, match=needle):
        VectorIndex(tmp_path, **kwargs)


async def test_calls_after_close_raise_and_close_is_idempotent(tmp_path: Path) -> None:
    """After close() every call raises BackendClosedError; close() twice is fine."""
    index = VectorIndex(tmp_path, DIM)
    await index.close()
    await index.close()
    with pytest.raises(BackendClosedError):
        await index.upsert("ns", "a", [1, 1, 1, 1])
    with pytest.raises(BackendClosedError):
        await index.query("ns", [1, 1, 1, 1])
    with pytest.raises(BackendClosedError):
        await index.save()
    with pytest.raises(BackendClosedError):
        await index.ping()


async def test_ping_requires_load(tmp_path: Path) -> None:
    """ping() raises NotStartedError before load() and passes after it."""
    index = VectorIndex(tmp_path / "fresh", DIM)
    try:
        with pytest.raises(NotStartedError, match="not loaded"):
            await index.ping()
        await index.load()
        await index.ping()
    finally:
        await index.close()


async def test_a_single_string_is_not_a_list_of_ids(index: VectorIndex) -> None:
    """Passing "ab" where a list of ids belongs raises instead of using ids 'a' and 'b'."""
    before = await state(index)
    with pytest.raises(InvalidIdentifierError, match="ids must be a list"):
        await index.delete_many("ns", "ab")
    with pytest.raises(InvalidIdentifierError, match="ids must be a list"):
        await index.get("ns", "ab")
    with pytest.raises(InvalidIdentifierError, match="ids must be a list"):
        await index.upsert_arrays("ns", "ab", [[1, 1, 1, 1], [1, 0, 0, 0]])
    await expect_unchanged(index, before)


async def test_metadata_and_filters_may_be_any_mapping(index: VectorIndex) -> None:
    """Read-only and user mappings are JSON objects too: stored as plain dicts, filterable."""
    await index.upsert("ns", "c", [0, 0, 1, 0], MappingProxyType({"k": UserDict(n=3)}))
    await index.upsert_many("ns", [("d", [0, 0, 0, 1], UserDict(k=4))])
    [stored] = await index.get("ns", ["c"])
    assert stored.metadata == {"k": {"n": 3}}
    assert type(stored.metadata) is dict
    found = await index.query("ns", [0, 0, 0, 1], filter={"k": MappingProxyType({"$in": [4]})})
    assert [match.id for match in found] == ["d"]


@pytest.mark.parametrize(
    "vectors",
    [np.ones((5, DIM + 3)), np.ones((2, DIM)), "garbage", np.ones(DIM)],
    ids=["wrong-width", "rows-without-ids", "not-numbers", "one-dimensional"],
)
async def test_an_empty_batch_still_checks_its_vectors(index: VectorIndex, vectors: Any) -> None:
    """No ids but vectors that could not go with any: refused like in a non-empty batch."""
    before = await state(index)
    with pytest.raises(ValueError, match="vector"):
        await index.upsert_arrays("ns", [], vectors)
    await expect_unchanged(index, before)


async def test_an_empty_batch_is_fine(index: VectorIndex) -> None:
    """No ids and no rows (a list or a 0 x dimension array) changes nothing, raises nothing."""
    before = await state(index)
    await index.upsert_arrays("ns", [], np.empty((0, DIM), dtype=np.float32))
    await index.upsert_arrays("ns", [], [])
    await index.upsert_many("ns", [])
    await expect_unchanged(index, before)


@pytest.mark.parametrize("magnitude", [1e300, 1e-50])
async def test_finite_vectors_beyond_float32_range_keep_their_direction(
    index: VectorIndex, magnitude: float
) -> None:
    """float64 components too large or too small for float32 are finite, non-zero input:
    stored (single and batch) and queried by their direction."""
    given = np.array([3.0, 4.0, 0.0, 0.0]) * magnitude
    await index.upsert("ns", "c", given)
    await index.upsert_arrays("ns", ["d"], given[None, :])
    stored = {record.id: record.as_array() for record in await index.get("ns", ["c", "d"])}
    for vector in stored.values():
        np.testing.assert_allclose(vector, [0.6, 0.8, 0.0, 0.0], rtol=1e-6)
    [best, _, _] = await index.query("ns", given, top_k=3)
    assert best.score == pytest.approx(1.0)
