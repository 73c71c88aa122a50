"""Table and column names for the SQL that helpers build (``insert``, ``update``, stats).

A name is accepted only as a plain identifier (a letter or ``_``, then letters, digits, ``_``;
at most 63 bytes), optionally qualified by a schema (``schema.table``). It is folded to lower
case, as Postgres reads an unquoted name (so ``insert("Users", ...)`` reaches ``users``, as in
code that wrote the name unquoted), then double-quoted, so that reserved words (``user``,
``order``) work as column names. Anything else is refused: no name is ever interpolated raw.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Final

from app.errors import SqlIdentifierError

__all__ = ["quote_identifier", "quote_table", "split_table"]

MAX_IDENTIFIER_BYTES: Final = 63
_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def _checked(name: object, what: str) -> str:
    if not isinstance(name, str):
        raise SqlIdentifierError(f"{what} must be a str, got {type(name).__name__}")
    if not _PLAIN.match(name) or len(name.encode()) > MAX_IDENTIFIER_BYTES:
        raise SqlIdentifierError(
            f"{what} {name!r} is not a plain identifier (a letter or _, then letters, digits "
            f"or _, at most {MAX_IDENTIFIER_BYTES} bytes)"
        )
    return name.lower()


@lru_cache(maxsize=1024)
def quote_identifier(name: str, what: str = "column name") -> str:
    """``"name"`` for a plain identifier; ``SqlIdentifierError`` otherwise."""
    return f'"{_checked(name, what)}"'


@lru_cache(maxsize=1024)
def split_table(name: str) -> tuple[str | None, str]:
    """``(schema or None, table)``, both checked and folded to lower case."""
    if not isinstance(name, str):
        raise SqlIdentifierError(f"table name must be a str, got {type(name).__name__}")
    parts = name.split(".")
    if len(parts) > 2:
        raise SqlIdentifierError(f"table name {name!r} has more than one '.' (schema.table)")
    if len(parts) == 2:
        return _checked(parts[0], "schema name"), _checked(parts[1], "table name")
    return None, _checked(parts[0], "table name")


@lru_cache(maxsize=1024)
def quote_table(name: str) -> str:
    """``"table"`` or ``"schema"."table"``; ``SqlIdentifierError`` for anything else."""
    schema, table = split_table(name)
    return f'"{table}"' if schema is None else f'"{schema}"."{table}"'
