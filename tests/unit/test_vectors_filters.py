"""The metadata filter language: equality and $in, combined with and, JSON semantics."""

from __future__ import annotations

from typing import Any

import pytest

from app.vectors.filters import compile_filter, json_equal


def keeps(spec: Any, metadata: Any) -> bool:
    predicate = compile_filter(spec)
    assert predicate is not None
    return predicate(metadata)


def test_no_filter_compiles_to_none() -> None:
    """filter=None means no predicate at all."""
    assert compile_filter(None) is None


def test_empty_filter_matches_everything_including_no_metadata() -> None:
    """{} keeps every vector, with or without metadata."""
    assert keeps({}, None)
    assert keeps({}, {"a": 1})


@pytest.mark.parametrize(
    ("spec", "metadata", "expected"),
    [
        ({"lang": "en"}, {"lang": "en"}, True),
        ({"lang": "en"}, {"lang": "de"}, False),
        ({"lang": "en"}, {"other": "en"}, False),
        ({"lang": "en"}, None, False),
        ({"lang": {"$eq": "en"}}, {"lang": "en"}, True),
        ({"n": 1}, {"n": 1.0}, True),
        ({"n": 1}, {"n": True}, False),
        ({"flag": True}, {"flag": 1}, False),
        ({"flag": True}, {"flag": True}, True),
        ({"x": None}, {"x": None}, True),
        ({"x": None}, {}, False),
        ({"tags": {"$eq": ["a", "b"]}}, {"tags": ["a", "b"]}, True),
        ({"tags": {"$eq": ["a", "b"]}}, {"tags": ["b", "a"]}, False),
        ({"o": {"$eq": {"k": 1}}}, {"o": {"k": 1}}, True),
        ({"o": {"$eq": {"k": 1}}}, {"o": {"k": 1, "j": 2}}, False),
        ({"lang": {"$in": ["en", "de"]}}, {"lang": "de"}, True),
        ({"lang": {"$in": ["en", "de"]}}, {"lang": "fr"}, False),
        ({"lang": {"$in": []}}, {"lang": "fr"}, False),
        ({"n": {"$in": [1, 2]}}, {"n": True}, False),
        ({"lang": "en", "year": {"$in": [2023, 2024]}}, {"lang": "en", "year": 2024}, True),
        ({"lang": "en", "year": {"$in": [2023, 2024]}}, {"lang": "en", "year": 2022}, False),
        ({"lang": "en", "year": {"$in": [2023, 2024]}}, {"lang": "de", "year": 2024}, False),
        ({"n": {"$eq": 1, "$in": [1, 2]}}, {"n": 1}, True),
        ({"n": {"$eq": 3, "$in": [1, 2]}}, {"n": 3}, False),
    ],
)
def test_filter_semantics(spec: Any, metadata: Any, expected: bool) -> None:
    """Each documented form keeps exactly the metadata it should."""
    assert keeps(spec, metadata) is expected


def test_filter_is_copied_at_compile_time() -> None:
    """Changing the filter dict after compiling does not change the predicate."""
    spec: dict[str, Any] = {"lang": {"$in": ["en"]}}
    predicate = compile_filter(spec)
    spec["lang"]["$in"].append("de")
    assert predicate is not None
    assert predicate({"lang": "de"}) is False


def test_json_equal_distinguishes_strings_from_numbers() -> None:
    """'1' never equals 1, and containers compare element by element."""
    assert not json_equal("1", 1)
    assert json_equal([1, {"a": 2.0}], [1.0, {"a": 2}])
    assert not json_equal([1], (1, 2))
