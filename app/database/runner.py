"""The query methods of the original design, over one connection at a time.

``QueryRunner`` holds them once; the client runs each on a connection from the pool (or on the
transaction the current task has open), a session or transaction on the one it holds. Every
driver error is translated at this boundary (``driver_errors.translate``).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from functools import lru_cache
from types import TracebackType
from typing import Any, Final, TypeAlias, TypeVar

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from app.database.driver_errors import DRIVER_ERRORS, translate
from app.database.identifiers import quote_identifier, quote_table
from app.database.sql_text import compile_query
from app.errors import QueryParameterError

__all__ = [
    "COPY_MIN_ROWS",
    "Connection",
    "CopyPlan",
    "HeldConnection",
    "QueryRunner",
    "copy_plan",
    "rows_as_dicts",
]

Connection: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"
Parameters: TypeAlias = Mapping[str, Any] | Sequence[Any] | None

# execute_many sends a batch of at least this many rows through COPY when the statement is a
# plain INSERT of parameters (benchmark case "database", row "execute_many").
COPY_MIN_ROWS: Final = 1000

_NAME = r'(?:"(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)'
_PLAIN_INSERT = re.compile(
    rf"\s*insert\s+into\s+(?P<table>{_NAME}(?:\s*\.\s*{_NAME})?)\s*"
    rf"\((?P<columns>\s*{_NAME}(?:\s*,\s*{_NAME})*\s*)\)\s*"
    r"values\s*\((?P<values>\s*:[A-Za-z_]\w*(?:\s*,\s*:[A-Za-z_]\w*)*\s*)\)\s*;?\s*\Z",
    re.IGNORECASE,
)
_NAME_ITEM = re.compile(_NAME)


def _identifier_text(name: str) -> str:
    """The name as Postgres reads it: quoted kept as written, unquoted folded to lower case."""
    if name.startswith('"'):
        return name[1:-1].replace('""', '"')
    return name.lower()


@dataclass(frozen=True, slots=True)
class CopyPlan:
    """How to send ``INSERT INTO t (a, b) VALUES (:a, :b)`` rows through COPY instead."""

    schema: str | None
    table: str
    columns: tuple[str, ...]


@lru_cache(maxsize=256)
def copy_plan(query: str) -> CopyPlan | None:
    """A plan when ``query`` inserts only its parameters, each once, into named columns."""
    match = _PLAIN_INSERT.match(query)
    if match is None:
        return None
    columns = tuple(_identifier_text(c) for c in _NAME_ITEM.findall(match.group("columns")))
    values = [v.strip() for v in match.group("values").split(",")]
    if len(values) != len(columns) or len(set(values)) != len(values):
        return None
    parts = [_identifier_text(p) for p in _NAME_ITEM.findall(match.group("table"))]
    schema, table = (None, parts[0]) if len(parts) == 1 else (parts[0], parts[1])
    return CopyPlan(schema, table, columns)


def rows_as_dicts(records: list[asyncpg.Record]) -> list[dict[str, Any]]:
    """Records as dicts, converted in C loops (the fastest of the ways measured here)."""
    return list(map(dict, map(_record_items, records)))


_record_items = asyncpg.Record.items


@lru_cache(maxsize=512)
def _insert_sql(table: str, columns: tuple[str, ...]) -> str:
    target = quote_table(table)
    if not columns:
        return f"INSERT INTO {target} DEFAULT VALUES RETURNING *"  # noqa: S608 - checked names
    names = ", ".join(quote_identifier(column) for column in columns)
    places = ", ".join(f"${index}" for index in range(1, len(columns) + 1))
    return f"INSERT INTO {target} ({names}) VALUES ({places}) RETURNING *"  # noqa: S608


@lru_cache(maxsize=512)
def _update_sql(table: str, columns: tuple[str, ...]) -> str:
    if not columns:
        raise QueryParameterError(f"update of {table!r} needs at least one column in data")
    sets = ", ".join(
        f"{quote_identifier(column)} = ${index}" for index, column in enumerate(columns, 1)
    )
    return f"UPDATE {quote_table(table)} SET {sets} WHERE "  # noqa: S608 - checked names


_T = TypeVar("_T")
_Call: TypeAlias = Callable[[Connection, str, Sequence[Any]], Awaitable[_T]]


def _execute(connection: Connection, sql: str, args: Sequence[Any]) -> Awaitable[str]:
    return connection.execute(sql, *args)


def _fetchrow(
    connection: Connection, sql: str, args: Sequence[Any]
) -> Awaitable[asyncpg.Record | None]:
    return connection.fetchrow(sql, *args)


def _fetch(
    connection: Connection, sql: str, args: Sequence[Any]
) -> Awaitable[list[asyncpg.Record]]:
    return connection.fetch(sql, *args)


def _row_count(status: str) -> int:
    """The count in a command tag (``UPDATE 3``, ``INSERT 0 1``)."""
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0


class HeldConnection:
    """An async context manager that hands out a held connection and gives nothing back."""

    __slots__ = ("connection",)

    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    async def __aenter__(self) -> Connection:
        return self.connection

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None


class QueryRunner:
    """``execute``, ``execute_many``, ``execute_script``, ``insert``, ``update``, ``fetch_*``."""

    copy_min_rows: int = COPY_MIN_ROWS

    def _held_connection(self) -> Connection | None:
        """The connection this runner holds (a session's, the current transaction's), if any."""
        raise NotImplementedError

    def _call_pool(self) -> asyncpg.Pool:
        """Where a runner that holds no connection takes one for each call."""
        raise NotImplementedError

    def _acquire(self) -> AbstractAsyncContextManager[Connection]:
        """A connection for one call: the one held, or one from the pool."""
        held = self._held_connection()
        return self._call_pool().acquire() if held is None else HeldConnection(held)

    async def _run(self, operation: str, query: str, parameters: Parameters, call: _Call[_T]) -> _T:
        """Compile and bind ``query``, then ``call(connection, sql, args)``, errors translated."""
        compiled = compile_query(query)
        args = compiled.bind(parameters)
        try:
            # A held connection is used as it is: no context manager on the hot path.
            held = self._held_connection()
            if held is not None:
                return await call(held, compiled.sql, args)
            async with self._call_pool().acquire() as connection:
                return await call(connection, compiled.sql, args)
        except DRIVER_ERRORS as exc:
            raise translate(exc, operation, query=query, names=compiled.names) from exc

    async def execute(self, query: str, parameters: Parameters = None) -> str:
        """Run one statement (several when there are no parameters); return its command tag."""
        return await self._run("execute", query, parameters, _execute)

    async def fetch_one(
        self, query: str, parameters: Parameters = None, commit: bool = False
    ) -> dict[str, Any] | None:
        """The first row as a dict, or None.

        ``commit`` is the original's flag for ``INSERT ... RETURNING``: a statement outside a
        transaction commits by itself here, and one inside commits with its block.
        """
        record = await self._run("fetch_one", query, parameters, _fetchrow)
        return None if record is None else dict(record.items())

    async def fetch_all(self, query: str, parameters: Parameters = None) -> list[dict[str, Any]]:
        """Every row as a dict."""
        return rows_as_dicts(await self._run("fetch_all", query, parameters, _fetch))

    async def fetch_records(
        self, query: str, parameters: Parameters = None
    ) -> list[asyncpg.Record]:
        """Every row as asyncpg Records (tuple- and mapping-like, read-only), not dicts.

        For large results on hot paths: building a dict per row costs about a third of the
        fetch itself (benchmark case "database", rows "fetch_all" and "fetch_records").
        """
        return await self._run("fetch_records", query, parameters, _fetch)

    async def fetch_value(self, query: str, parameters: Parameters = None, column: int = 0) -> Any:
        """One value of the first row (None when there is no row)."""

        def fetchval(connection: Connection, sql: str, args: Sequence[Any]) -> Awaitable[Any]:
            return connection.fetchval(sql, *args, column=column)

        return await self._run("fetch_value", query, parameters, fetchval)

    async def insert(self, table: str, data: Mapping[str, Any]) -> Any:
        """Insert one row; return the first column of the inserted row (its id, typically)."""
        sql = _insert_sql(table, tuple(data))
        try:
            async with self._acquire() as connection:
                record = await connection.fetchrow(sql, *data.values())
        except DRIVER_ERRORS as exc:
            raise translate(exc, "insert", table=table, names=tuple(data)) from exc
        assert record is not None  # INSERT ... RETURNING without ON CONFLICT returns its row
        return record[0]

    async def update(
        self,
        table: str,
        data: Mapping[str, Any],
        where_clause: str,
        where_params: Parameters = None,
    ) -> int:
        """Set ``data`` on the rows ``where_clause`` selects; return how many rows changed.

        ``where_clause`` has its own named parameters (``"id = :id"``), apart from ``data``:
        a column and a parameter may share a name.
        """
        head = _update_sql(table, tuple(data))
        where = compile_query(where_clause, len(data) + 1)
        if where.positional or not (where_params is None or isinstance(where_params, Mapping)):
            raise QueryParameterError(
                "update's where_clause takes named parameters (:name) and a mapping: "
                "$n there would mean the SET values"
            )
        where_args = where.bind(where_params)
        try:
            async with self._acquire() as connection:
                status = await connection.execute(head + where.sql, *data.values(), *where_args)
        except DRIVER_ERRORS as exc:
            names = (*data, *where.names)
            raise translate(exc, "update", table=table, names=names) from exc
        return _row_count(status)

    async def execute_many(self, query: str, parameters_list: Sequence[Mapping[str, Any]]) -> None:
        """Run ``query`` once per parameter set, all or nothing.

        A batch of ``copy_min_rows`` or more for a plain ``INSERT INTO t (a, b) VALUES (:a,
        :b)`` goes through COPY (``copy_records_to_table``); others through ``executemany``.
        """
        compiled = compile_query(query)
        rows = compiled.bind_many(parameters_list)
        if not rows:
            return
        plan = copy_plan(query) if len(rows) >= self.copy_min_rows else None
        try:
            async with self._acquire() as connection:
                if plan is None:
                    await connection.executemany(compiled.sql, rows)
                else:
                    await connection.copy_records_to_table(
                        plan.table, records=rows, columns=plan.columns, schema_name=plan.schema
                    )
        except DRIVER_ERRORS as exc:
            raise translate(exc, "execute_many", query=query, names=compiled.names) from exc

    async def execute_script(self, script: str) -> None:
        """Run a multi-statement script in one transaction (no parameters)."""
        try:
            async with self._acquire() as connection, connection.transaction():
                await connection.execute(script)
        except DRIVER_ERRORS as exc:
            raise translate(exc, "execute_script", query=script) from exc
