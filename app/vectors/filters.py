"""The metadata filter language of :meth:`VectorIndex.query`.

A filter is a ``dict`` from a top-level metadata key to a condition; all conditions must
hold (logical *and*). A condition is either a plain JSON value (equality) or a dict of
operators::

    {"lang": "en"}                              metadata["lang"] == "en"
    {"lang": {"$eq": "en"}}                     the same, spelled out
    {"lang": {"$in": ["en", "de"]}}             metadata["lang"] is one of the listed values
    {"lang": "en", "year": {"$in": [2023, 2024]}}   both must hold
    {"tags": {"$eq": ["a", "b"]}}               equality with a list or object needs "$eq"
    {}                                          matches every vector

Equality is JSON equality: ``1`` equals ``1.0`` but never ``true``; strings compare
exactly; lists and objects compare element by element. A missing key, or a vector stored
without metadata, never matches. Unknown operators (any key starting with ``$`` other than
``$eq`` and ``$in``), a top-level key starting with ``$`` (``$or``, ``$and``: there is no
such combinator), a non-list ``$in`` and a dict condition without operators raise
:class:`~app.vectors.validation.InvalidQueryError` when the query is made, before any
search. Filters are applied before ranking, so a query returns ``min(top_k, matches)``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from app.vectors.validation import InvalidQueryError, check_metadata

__all__ = [
    "OPERATORS",
    "Clause",
    "Filter",
    "Predicate",
    "compile_filter",
    "json_equal",
    "parse_filter",
]

Filter = Mapping[str, Any]
Predicate = Callable[[Mapping[str, Any] | None], bool]
# One condition of a parsed filter: a top-level key and the values it may equal (any of).
Clause = tuple[str, list[object]]
OPERATORS: Final = frozenset({"$eq", "$in"})


def json_equal(left: object, right: object) -> bool:
    """Equality with JSON semantics: booleans never equal numbers; containers element-wise."""
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool) and left == right
    if isinstance(left, int | float) and isinstance(right, int | float):
        return left == right
    if isinstance(left, str) or isinstance(right, str) or left is None or right is None:
        return type(left) is type(right) and left == right
    if isinstance(left, Mapping) and isinstance(right, Mapping):
        return left.keys() == right.keys() and all(json_equal(left[k], right[k]) for k in left)
    if isinstance(left, Sequence) and isinstance(right, Sequence):
        return len(left) == len(right) and all(
            json_equal(a, b) for a, b in zip(left, right, strict=True)
        )
    return False


def _condition(key: str, condition: object) -> list[object] | None:
    """The accepted values for ``key``, or ``None`` when the filter value is a plain equality."""
    if not isinstance(condition, Mapping):
        return None
    if not condition:
        msg = (
            f"filter condition for {key!r} is an empty dict; "
            "use {'$eq': value} or {'$in': [...]}"
        )
        raise InvalidQueryError(msg)
    accepted: list[object] | None = None
    for operator, operand in condition.items():
        if operator not in OPERATORS:
            hint = "unknown filter operator" if str(operator).startswith("$") else "not an operator"
            msg = (
                f"filter condition for {key!r}: {hint} {operator!r}; expected one of "
                f"{sorted(OPERATORS)} (compare with an object via {{'$eq': {{...}}}})"
            )
            raise InvalidQueryError(msg)
        if operator == "$eq":
            values: list[object] = [operand]
        elif isinstance(operand, list | tuple):
            values = list(operand)
        else:
            msg = f"filter '$in' for {key!r} needs a list of values, got {type(operand).__name__}"
            raise InvalidQueryError(msg)
        accepted = (
            values
            if accepted is None
            else [v for v in accepted if any(json_equal(v, w) for w in values)]
        )
    return accepted


def parse_filter(spec: object) -> list[Clause] | None:
    """Check ``spec``: ``None`` for no filter, else its clauses (all must hold; ``[]``: any
    vector, with or without metadata). Each store turns the clauses into its own test."""
    if spec is None:
        return None
    if not isinstance(spec, Mapping):
        msg = f"filter must be a dict of metadata key -> condition, got {type(spec).__name__}"
        raise InvalidQueryError(msg)
    try:
        copy = check_metadata(spec)
    except ValueError as exc:
        msg = f"filter must be JSON (str keys, JSON values): {exc}"
        raise InvalidQueryError(msg) from exc
    if not copy:
        return []
    operators = sorted(key for key in copy if key.startswith("$"))
    if operators:
        msg = (
            f"filter keys are metadata keys (all must match); operators such as {operators[0]!r} "
            f"belong inside a condition ({sorted(OPERATORS)}), got {operators}"
        )
        raise InvalidQueryError(msg)
    clauses: list[Clause] = []
    for key, condition in copy.items():
        accepted = _condition(key, condition)
        clauses.append((key, [condition] if accepted is None else accepted))
    return clauses


def compile_filter(spec: object) -> Predicate | None:
    """Check ``spec`` and turn it into a predicate on stored metadata (``None``: no filter)."""
    clauses = parse_filter(spec)
    if clauses is None:
        return None
    if not clauses:
        return lambda _metadata: True

    def matches(metadata: Mapping[str, Any] | None) -> bool:
        if metadata is None:
            return False
        for key, accepted in clauses:
            if key not in metadata:
                return False
            value = metadata[key]
            if not any(json_equal(value, candidate) for candidate in accepted):
                return False
        return True

    return matches
