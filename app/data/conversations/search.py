"""The full-text search statements: bounded work for rare and common terms alike.

A GIN index finds a rare term's few rows at once but must fetch every row of a common one
before it can order them by time; the ``(timestamp, id)`` index finds a common term's newest
rows at once but walks the whole table for a rare one. The planner picks between the two from
term statistics, and guessed wrong here for a rare term (its estimate for a term outside the
statistics' list sent it down the whole time index: 450 ms at 1M rows). So search runs in two
steps whose cost does not hang on that guess:

1. *window*: matches among the ``RECENT_WINDOW`` newest messages (a range of the time index,
   whichever index the planner prefers inside it), newest first;
2. *all*, only when the window held fewer than ``limit`` matches (a rare term): every match
   found through the GIN index (materialized, so no plan can walk the time index), newest first.

Relevance ranks the first ``RELEVANCE_CANDIDATES`` rows of the same steps with ``ts_rank``
(ranking every match of a common word took 155-637 ms at 1M rows).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = ["RECENT_WINDOW", "RELEVANCE_CANDIDATES", "SearchStatements"]

RECENT_WINDOW: Final = 5_000
RELEVANCE_CANDIDATES: Final = 1000
_QUERY: Final = "websearch_to_tsquery('english', $1)"


@dataclass(frozen=True, slots=True)
class SearchStatements:
    """The SQL of each step, for one table: ``$1`` the query, ``$2`` how many (candidates when
    ranked), ``$3`` the window (``window*``), then the ranked statements' limit."""

    window: str
    everything: str
    window_ranked: str
    everything_ranked: str

    @classmethod
    def for_table(cls, table: str, columns: str) -> SearchStatements:
        """The statements for ``table`` (quoted) returning ``columns``."""
        # The M-th newest timestamp bounds the window; -infinity while the table is smaller.
        since = (
            f"COALESCE((SELECT timestamp FROM {table} ORDER BY timestamp DESC, id DESC "  # noqa: S608
            "OFFSET $3 LIMIT 1), '-infinity')"
        )
        window = (
            f"SELECT {columns}, search FROM {table} "  # noqa: S608 (checked, quoted identifier)
            f"WHERE search @@ {_QUERY} AND timestamp >= {since} "
            "ORDER BY timestamp DESC, id DESC LIMIT $2"
        )
        everything = (
            f"WITH matches AS MATERIALIZED (SELECT id, timestamp FROM {table} "  # noqa: S608
            f"WHERE search @@ {_QUERY}), "
            "newest AS (SELECT id FROM matches ORDER BY timestamp DESC, id DESC LIMIT $2) "
            f"SELECT {columns}, search FROM {table} WHERE id IN (SELECT id FROM newest) "
            "ORDER BY timestamp DESC, id DESC"
        )

        def ranked(candidates: str, limit: str) -> str:
            return (
                f"SELECT {columns} FROM ({candidates}) AS candidates "  # noqa: S608
                f"ORDER BY ts_rank(search, {_QUERY}) DESC, timestamp DESC, id DESC LIMIT {limit}"
            )

        return cls(
            window=f"SELECT {columns} FROM ({window}) AS found",  # noqa: S608
            everything=f"SELECT {columns} FROM ({everything}) AS found",  # noqa: S608
            window_ranked=ranked(window, "$4"),
            everything_ranked=ranked(everything, "$3"),
        )
