"""The SQL of ``PgVectorStore``'s queries and writes; every value travels as a parameter.

Scores: stored vectors and queries are unit vectors, so the inner product ``<#>`` (which
pgvector returns negated) is the cosine similarity, at less cost than ``<=>``; its HNSW
operator class is ``vector_ip_ops``. Equal scores are ordered by id (``COLLATE "C"``).

A filter (:func:`app.vectors.filters.parse_filter`) becomes, per clause, a containment
test the GIN index answers (``metadata @> '{"key": value}'``, one per accepted value,
OR-ed) and an exact recheck (``metadata -> 'key' = ANY(values)``, jsonb equality, which
is the filter language's JSON equality: 1 = 1.0, never true; containers element-wise).
Containment alone would be too wide: an array contains a scalar, an object its subsets.

The query paths (chosen by ``PgVectorStore``, never by the planner):

- ``exact``: every row (or every matching row, gathered first in a ``MATERIALIZED`` CTE so
  the planner cannot push the ranking into an approximate index scan), ranked exactly;
- ``hnsw``: the index's ``ef`` nearest rows (``ORDER BY embedding <#> q LIMIT ef`` with
  ``hnsw.ef_search = ef``, the canonical index scan), then the filter, then the top k.
"""

from __future__ import annotations

import json
from typing import Final

from app.vectors.filters import Clause

__all__ = [
    "bounded_count_sql",
    "delete_sql",
    "exact_sql",
    "filter_sql",
    "get_sql",
    "hnsw_sql",
    "upsert_sql",
]

_COLUMNS: Final = "id, embedding <#> $1 AS distance, metadata"


def filter_sql(clauses: list[Clause], first_parameter: int) -> tuple[str, list[object]]:
    """The WHERE condition of ``clauses`` and its parameters, numbered from ``first_parameter``.

    ``[]`` (the empty filter) is ``TRUE``: every vector, with or without metadata.
    """
    conditions: list[str] = []
    parameters: list[object] = []

    def parameter(value: object) -> str:
        parameters.append(value)
        return f"${first_parameter + len(parameters) - 1}"

    for key, accepted in clauses:
        if not accepted:  # {"$in": []}, or $eq and $in that share no value
            conditions.append("FALSE")
            continue
        encoded = [json.dumps(value, ensure_ascii=False, allow_nan=False) for value in accepted]
        contains = " OR ".join(
            f"metadata @> {parameter(f'{{{json.dumps(key, ensure_ascii=False)}: {value}}}')}::jsonb"
            for value in encoded
        )
        recheck = f"metadata -> {parameter(key)}::text = ANY({parameter(encoded)}::jsonb[])"
        conditions.append(f"({contains}) AND {recheck}")
    return (" AND ".join(conditions) or "TRUE"), parameters


def exact_sql(table: str, where: str | None, limit_parameter: int) -> str:
    """Every (matching) row ranked exactly: ``$1`` the query, ``$<limit>`` k."""
    if where is None:
        return f"SELECT {_COLUMNS} FROM {table} ORDER BY distance, id LIMIT ${limit_parameter}"
    return (
        f"WITH matching AS MATERIALIZED (SELECT id, embedding, metadata FROM {table} "
        f"WHERE {where}) SELECT {_COLUMNS} FROM matching ORDER BY distance, id "
        f"LIMIT ${limit_parameter}"
    )


def bounded_count_sql(table: str, where: str, cap_parameter: int) -> str:
    """How many rows match, counting no further than ``$<cap>`` (the GIN index finds them)."""
    return (
        f"SELECT count(*) FROM (SELECT 1 FROM {table} WHERE {where} "
        f"LIMIT ${cap_parameter}) AS found"
    )


def hnsw_sql(table: str, where: str | None, ef_parameter: int, limit_parameter: int) -> str:
    """The index's ``$<ef>`` nearest rows, filtered, best ``$<limit>`` (ef_search set by caller)."""
    candidates = (
        f"SELECT id, embedding <#> $1 AS distance, metadata FROM {table} "
        f"ORDER BY embedding <#> $1 LIMIT ${ef_parameter}"
    )
    condition = "" if where is None else f" WHERE {where}"
    return (
        f"SELECT id, distance, metadata FROM ({candidates}) AS candidates{condition} "
        f"ORDER BY distance, id LIMIT ${limit_parameter}"
    )


def upsert_sql(table: str) -> str:
    """Insert or replace a batch given as three arrays, in one statement."""
    return (
        f"INSERT INTO {table} (id, embedding, metadata) "
        "SELECT * FROM unnest($1::text[], $2::vector[], $3::jsonb[]) "
        "ON CONFLICT (id) DO UPDATE SET embedding = EXCLUDED.embedding, "
        "metadata = EXCLUDED.metadata"
    )


def delete_sql(table: str) -> str:
    return f"DELETE FROM {table} WHERE id = ANY($1::text[])"


def get_sql(table: str) -> str:
    return f"SELECT id, embedding, metadata FROM {table} WHERE id = ANY($1::text[])"
