"""How ``PgVectorStore`` answers a query on a namespace table: the SQL path, and its result.

Three paths (SQL in :mod:`app.vectors.pgvector_sql`), chosen here, never by the planner
(left alone at 1 % selectivity it used the HNSW index and returned 0.44 rows of 10):

- ``exact``: a namespace without a usable index (below ``VECTORS__HNSW_MIN_ROWS``): every
  (matching) row ranked exactly;
- ``unfiltered``: the HNSW index's first k rows at ``ef_search``;
- ``filtered`` on an indexed namespace: a count of the matching rows, bounded at
  ``exact_max_rows``, decides. Few: they are ranked exactly in a ``MATERIALIZED`` CTE.
  Many: the index's ``filtered_ef_search`` nearest rows are filtered; if fewer than k of
  them match, the exact scan answers after all. The decision is kept per namespace and
  filter for ``FILTER_PATH_TTL_S``: either path returns the matching rows' top k for its
  case and the index path falls back, so a stale decision costs time, never results.

``hnsw.ef_search`` takes one statement when the connection's default already has the
wanted value (the container's pool starts its connections with ``VECTORS__EF_SEARCH``),
else ``SET LOCAL`` in a read-only transaction opened in the same round trip.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Final

import asyncpg
import numpy as np
import numpy.typing as npt

from app.vectors import pgvector_sql as sql
from app.vectors.filters import Clause
from app.vectors.models import VectorMatch

if TYPE_CHECKING:
    from app.vectors.pgvector_schema import Connection

__all__ = ["FILTER_PATHS_MAX", "FILTER_PATH_TTL_S", "Search", "matches"]

FILTER_PATH_TTL_S: Final = 30.0
FILTER_PATHS_MAX: Final = 4096
MAX_EF_SEARCH: Final = 1000  # pgvector's range is 1-1000

Unit = npt.NDArray[np.float32]


def matches(rows: Iterable[asyncpg.Record]) -> list[VectorMatch]:
    """Rows of (id, distance = negated inner product, metadata) as matches, best first,
    equal scores by id."""
    found = [
        VectorMatch(
            row["id"],
            -float(row["distance"]),
            None if row["metadata"] is None else json.loads(row["metadata"]),
        )
        for row in rows
    ]
    found.sort(key=lambda match: (-match.score, match.id))
    return found


class Search:
    """The query paths of one store, with its tuning and its remembered filter decisions."""

    def __init__(self, *, ef_search: int, filtered_ef_search: int, exact_max_rows: int) -> None:
        self.ef_search = ef_search
        self.filtered_ef_search = filtered_ef_search
        self.exact_max_rows = exact_max_rows
        self.session_ef_search: int | None = None  # the pool connections' default, if known
        # (table, filter) -> (True: rank the matching rows exactly, decided at)
        self._paths: dict[tuple[str, str], tuple[bool, float]] = {}

    async def exact(
        self, connection: Connection, table: str, clauses: list[Clause] | None, unit: Unit, k: int
    ) -> list[VectorMatch]:
        if clauses is None:
            return matches(await connection.fetch(sql.exact_sql(table, None, 2), unit, k))
        where, parameters = sql.filter_sql(clauses, 3)  # $1 the query, $2 k
        return matches(await connection.fetch(sql.exact_sql(table, where, 2), unit, k, *parameters))

    async def unfiltered(
        self, connection: Connection, table: str, unit: Unit, k: int
    ) -> list[VectorMatch]:
        return await self._through_index(connection, table, None, [], unit, k, self.ef_search)

    async def filtered(
        self, connection: Connection, table: str, clauses: list[Clause], unit: Unit, k: int
    ) -> list[VectorMatch]:
        """An indexed namespace, filtered: exact for few matches, through the index for many."""
        key = (table, json.dumps(clauses, ensure_ascii=False))
        few = self._known(key)
        where, parameters = sql.filter_sql(clauses, 3)  # $1 the query, $2 k
        if few is None:
            counted, _ = sql.filter_sql(clauses, 2)  # $1 the cap
            count_sql = sql.bounded_count_sql(table, counted, 1)
            cap = self.exact_max_rows + 1
            few = await connection.fetchval(count_sql, cap, *parameters) <= self.exact_max_rows
            self._remember(key, few)
        if few:
            return await self.exact(connection, table, clauses, unit, k)
        ef = max(self.filtered_ef_search, k)
        found = await self._through_index(connection, table, where, parameters, unit, k, ef)
        if len(found) < k:  # the index's nearest rows held too few matches: rank them all
            self._remember(key, True)
            return await self.exact(connection, table, clauses, unit, k)
        return found

    def _known(self, key: tuple[str, str]) -> bool | None:
        known = self._paths.get(key)
        if known is None or time.monotonic() - known[1] > FILTER_PATH_TTL_S:
            return None
        return known[0]

    def _remember(self, key: tuple[str, str], few: bool) -> None:
        if len(self._paths) >= FILTER_PATHS_MAX:
            self._paths.clear()  # rare; every decision is cheap to make again
        self._paths[key] = (few, time.monotonic())

    async def _through_index(  # noqa: PLR0917
        self,
        connection: Connection,
        table: str,
        where: str | None,
        parameters: list[object],
        unit: Unit,
        k: int,
        ef: int,
    ) -> list[VectorMatch]:
        ef = min(max(ef, k), MAX_EF_SEARCH)
        query = sql.hnsw_sql(table, where, 2 + len(parameters) + 1, 2)
        # Unfiltered, the index's first k rows are the answer: fetch no more than those.
        candidates = k if where is None else ef
        if ef == self.session_ef_search:
            return matches(await connection.fetch(query, unit, k, *parameters, candidates))
        await connection.execute(f"BEGIN READ ONLY; SET LOCAL hnsw.ef_search = {int(ef)}")
        try:
            rows = await connection.fetch(query, unit, k, *parameters, candidates)
        except BaseException:
            await connection.execute("ROLLBACK")
            raise
        await connection.execute("COMMIT")
        return matches(rows)
