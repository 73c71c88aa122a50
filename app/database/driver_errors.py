"""asyncpg's errors, translated at the boundary into the ``DatabaseError`` tree.

Each translated error names the operation and, where it can be told, the table; asyncpg's
error stays its ``__cause__``. Postgres' messages never carry the connection password, and
nothing here adds the DSN.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Final

import asyncpg

from app.errors import (
    DatabaseConnectionError,
    DatabaseError,
    DatabaseNotConnectedError,
    IntegrityConstraintError,
    InvalidParameterValueError,
    QueryError,
    QuerySyntaxError,
    StatementTimeoutError,
    UndefinedTableError,
    UniqueViolationError,
)

__all__ = ["DRIVER_ERRORS", "translate", "translated"]

# What a driver call can raise (TimeoutError is an OSError; listed for the reader).
DRIVER_ERRORS: Final = (asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError, OSError)

_RELATION = re.compile(r'relation "([^"]+)" does not exist')
_TABLE_IN_QUERY = re.compile(
    r'\b(?:from|into|update|join|table)\s+((?:"[^"]+"|[A-Za-z_][\w$]*)(?:\.(?:"[^"]+"|[A-Za-z_][\w$]*))?)',
    re.IGNORECASE,
)
_ARGUMENT = re.compile(r"\$(\d+)")
_CONNECTION_CLASSES: Final = ("08", "57P01", "57P02", "57P03")


def _table(exc: BaseException, table: str | None, query: str | None) -> str | None:
    found = getattr(exc, "table_name", None)
    if found:
        schema = getattr(exc, "schema_name", None)
        return f"{schema}.{found}" if schema and schema != "public" else str(found)
    if table is not None:
        return table
    match = _RELATION.search(str(exc))
    if match:
        return match.group(1)
    if query is not None:
        match = _TABLE_IN_QUERY.search(query)
        if match:
            return match.group(1).replace('"', "")
    return None


def _named_arguments(message: str, names: Sequence[str], first_index: int) -> str:
    """asyncpg says "$2"; the caller wrote ":email"."""

    def name_of(match: re.Match[str]) -> str:
        index = int(match.group(1)) - first_index
        return f":{names[index]}" if 0 <= index < len(names) else match.group()

    return _ARGUMENT.sub(name_of, message)


def translate(
    exc: BaseException,
    operation: str,
    *,
    table: str | None = None,
    query: str | None = None,
    names: Sequence[str] = (),
    first_index: int = 1,
) -> DatabaseError:
    """The ``DatabaseError`` for driver error ``exc`` (raise it ``from exc``)."""
    table = _table(exc, table, query)
    where = f"{operation} on {table}" if table else operation
    sqlstate = getattr(exc, "sqlstate", None)
    detail = str(exc).strip() or type(exc).__name__
    if isinstance(exc, TimeoutError) or sqlstate == "57014":
        return StatementTimeoutError(
            f"{where} timed out: {detail}", operation=operation, table=table, sqlstate=sqlstate
        )
    if isinstance(exc, asyncpg.DataError):
        detail = _named_arguments(detail, names, first_index)
        return InvalidParameterValueError(
            f"{where}: {detail}", operation=operation, table=table, sqlstate=sqlstate
        )
    if isinstance(exc, asyncpg.InterfaceError) and "pool is clos" in detail:
        return DatabaseNotConnectedError(f"{where}: the connection pool is closed")
    connection_lost = isinstance(
        exc, (OSError, asyncpg.ConnectionDoesNotExistError, asyncpg.PostgresConnectionError)
    ) or (isinstance(sqlstate, str) and sqlstate.startswith(_CONNECTION_CLASSES))
    if connection_lost or "connection is closed" in detail:
        return DatabaseConnectionError(f"{where}: the connection to Postgres failed: {detail}")
    message = f"{where} failed: {detail}" + (f" (SQLSTATE {sqlstate})" if sqlstate else "")
    constraint = getattr(exc, "constraint_name", None)
    if sqlstate == "42P01":
        return UndefinedTableError(message, operation=operation, table=table, sqlstate=sqlstate)
    if sqlstate == "23505":
        return UniqueViolationError(
            message, operation=operation, table=table, sqlstate=sqlstate, constraint=constraint
        )
    if isinstance(sqlstate, str) and sqlstate.startswith("23"):
        return IntegrityConstraintError(
            message, operation=operation, table=table, sqlstate=sqlstate, constraint=constraint
        )
    if isinstance(sqlstate, str) and sqlstate.startswith("42") and sqlstate != "42501":
        return QuerySyntaxError(message, operation=operation, table=table, sqlstate=sqlstate)
    return QueryError(message, operation=operation, table=table, sqlstate=sqlstate)


@contextmanager
def translated(operation: str) -> Iterator[None]:
    """Driver errors raised inside, as ``translate`` makes them (raised ``from`` the driver's)."""
    try:
        yield
    except DRIVER_ERRORS as exc:
        raise translate(exc, operation) from exc
