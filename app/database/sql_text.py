"""Reading SQL text: named parameters (``:name``) compiled to asyncpg's ``$n``, scripts split.

One scanner finds the *code* of a statement: everything outside string literals (``'...'``
with ``''`` escapes, ``E'...'`` with backslash escapes too), quoted identifiers (``"..."``),
comments (``-- ...`` and nestable ``/* ... */``) and dollar-quoted bodies (``$tag$ ... $tag$``).
Only code is searched for parameters and for the ``;`` between statements.

In code, ``:name`` (a letter or ``_``, then letters, digits, ``_``) is a parameter unless it
follows ``:`` (a ``::cast``) or an identifier character (an array slice ``a[lo:hi]``);
``\\:`` stands for a literal ``:``. A name used twice is one parameter. Compiling is cached per
query text, so a hot query pays a dict lookup, not a scan.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final

from app.errors import QueryParameterError, QuerySyntaxError

__all__ = ["CompiledQuery", "code_spans", "compile_query", "split_statements"]

COMPILE_CACHE_SIZE: Final = 4096

_SPECIAL = re.compile(r"""['"$]|--|/\*""")
_DOLLAR_TAG = re.compile(r"\$(?:[A-Za-z_\x80-\U0010ffff][\w\x80-\U0010ffff]*)?\$")
_BLOCK_COMMENT_PART = re.compile(r"/\*|\*/")
# Literals and quoted names, whole (loops unrolled: no backtracking on long bodies).
_STRING = re.compile(r"'[^']*(?:''[^']*)*'")
_E_STRING = re.compile(r"'[^'\\]*(?:(?:''|\\.)[^'\\]*)*'", re.S)
_QUOTED_NAME = re.compile(r'"[^"]*(?:""[^"]*)*"')
# In code: a cast, an escaped colon, a positional parameter, or a named one.
_CODE_TOKEN = re.compile(r"::+|\\:|(?<![\w$])\$\d+|(?<![\w$:]):([A-Za-z_][A-Za-z0-9_]*)")


def _ident_char(char: str) -> bool:
    return char in {"_", "$"} or char.isalnum()


def _unterminated(what: str, sql: str, start: int) -> QuerySyntaxError:
    line = sql.count("\n", 0, start) + 1
    excerpt = sql[start : start + 40]
    return QuerySyntaxError(
        f"unterminated {what} starting at line {line} (offset {start}): {excerpt!r}",
        operation="parse",
    )


def _quoted_end(sql: str, start: int, pattern: re.Pattern[str], what: str) -> int:
    match = pattern.match(sql, start)
    if match is None:
        raise _unterminated(what, sql, start)
    return match.end()


def _string_end(sql: str, start: int) -> int:
    """End (exclusive) of the literal whose opening quote is at ``start`` (``E'...'`` takes
    backslash escapes too; standard strings only ``''``)."""
    escapes = (
        start > 0 and sql[start - 1] in "eE" and (start == 1 or not _ident_char(sql[start - 2]))
    )
    return _quoted_end(sql, start, _E_STRING if escapes else _STRING, "string literal")


def _block_comment_end(sql: str, start: int) -> int:
    depth, position = 1, start + 2
    while depth:
        match = _BLOCK_COMMENT_PART.search(sql, position)
        if match is None:
            raise _unterminated("comment", sql, start)
        depth += 1 if match.group() == "/*" else -1
        position = match.end()
    return position


def _skip_end(sql: str, start: int, opener: str) -> int | None:
    """End of the non-code region starting at ``start``, or None if ``opener`` opens none."""
    if opener == "'":
        return _string_end(sql, start)
    if opener == '"':
        return _quoted_end(sql, start, _QUOTED_NAME, "quoted identifier")
    if opener == "--":
        newline = sql.find("\n", start)
        return len(sql) if newline < 0 else newline + 1
    if opener == "/*":
        return _block_comment_end(sql, start)
    # "$": a dollar quote only where an identifier or a $n cannot be going on.
    if start > 0 and _ident_char(sql[start - 1]):
        return None
    tag = _DOLLAR_TAG.match(sql, start)
    if tag is None:
        return None
    close = sql.find(tag.group(), tag.end())
    if close < 0:
        raise _unterminated(f"dollar-quoted body {tag.group()}", sql, start)
    return close + len(tag.group())


def code_spans(sql: str) -> list[tuple[int, int]]:
    """The ``(start, end)`` ranges of ``sql`` that are code, in order."""
    spans: list[tuple[int, int]] = []
    code_start = position = 0
    while True:
        match = _SPECIAL.search(sql, position)
        if match is None:
            break
        end = _skip_end(sql, match.start(), match.group())
        if end is None:
            position = match.end()
            continue
        if match.start() > code_start:
            spans.append((code_start, match.start()))
        code_start = position = end
    if code_start < len(sql):
        spans.append((code_start, len(sql)))
    return spans


def split_statements(script: str) -> list[str]:
    """The statements of ``script``, split at the ``;`` in code; empty ones dropped."""
    statements: list[str] = []
    start = 0
    for span_start, span_end in code_spans(script):
        semicolon = script.find(";", span_start, span_end)
        while semicolon >= 0:
            statements.append(script[start:semicolon])
            start = semicolon + 1
            semicolon = script.find(";", start, span_end)
    statements.append(script[start:])
    return [text.strip() for text in statements if _has_code(text)]


def _has_code(text: str) -> bool:
    """False for a piece of a script that holds only whitespace and comments."""
    position = 0
    while True:
        match = _SPECIAL.search(text, position)
        if text[position : len(text) if match is None else match.start()].strip():
            return True
        if match is None:
            return False
        if match.group() not in ("--", "/*"):
            return True  # a literal, a quoted name, a dollar body or a lone "$"
        end = _skip_end(text, match.start(), match.group())
        assert end is not None  # comments always have an end (or raised)
        position = end


@dataclass(frozen=True, slots=True)
class CompiledQuery:
    """A query in asyncpg's form, and its parameter names in ``$n`` order."""

    sql: str
    names: tuple[str, ...]
    positional: bool = False  # the text uses $n itself

    def bind(self, parameters: Mapping[str, Any] | Sequence[Any] | None) -> Sequence[Any]:
        """The positional arguments for ``parameters``; a missing or extra one is an error."""
        names = self.names
        if parameters is None:
            if names:
                raise _mismatch(names, {})
            return ()
        if isinstance(parameters, Mapping):
            if len(parameters) == len(names):
                try:
                    return [parameters[name] for name in names]
                except KeyError:
                    pass
            raise _mismatch(names, parameters)
        if isinstance(parameters, (str, bytes)) or not isinstance(parameters, Sequence):
            raise QueryParameterError(
                "parameters must be a mapping of names to values (or a sequence for a query "
                f"written with $1, $2, ...), got {type(parameters).__name__}"
            )
        if names:
            raise QueryParameterError(
                f"the query uses named parameters {list(names)}; pass a mapping, "
                f"got a {type(parameters).__name__}"
            )
        return parameters

    def bind_many(self, parameter_sets: Sequence[Mapping[str, Any]]) -> list[Sequence[Any]]:
        """``bind`` for each set; the common case (dicts holding exactly the names) in C loops."""
        if not isinstance(parameter_sets, (list, tuple)):
            parameter_sets = list(parameter_sets)  # a generator would be read up by the checks
        names = self.names
        if names and all(isinstance(p, dict) for p in parameter_sets):
            count = len(names)
            if all(map(count.__eq__, map(len, parameter_sets))):
                try:
                    values = list(map(operator.itemgetter(*names), parameter_sets))
                except KeyError:
                    pass  # a set misses a name: bind() below names it
                else:
                    return [(value,) for value in values] if count == 1 else values
        return [self.bind(parameters) for parameters in parameter_sets]


def _mismatch(names: Sequence[str], given: Mapping[str, Any]) -> QueryParameterError:
    missing = [name for name in names if name not in given]
    extra = sorted(str(key) for key in given if key not in set(names))
    parts = []
    if missing:
        parts.append(f"missing parameter(s) {', '.join(':' + n for n in missing)}")
    if extra:
        parts.append(f"extra parameter(s) {', '.join(':' + n for n in extra)} not in the query")
    expected = ", ".join(":" + n for n in names) or "none"
    return QueryParameterError(
        f"{'; '.join(parts)} (the query uses {expected})", missing=missing, extra=extra
    )


@lru_cache(maxsize=COMPILE_CACHE_SIZE)
def compile_query(query: str, first_index: int = 1) -> CompiledQuery:
    """``query`` with ``:name`` replaced by ``$n`` (numbered from ``first_index``), cached."""
    if ":" not in query:  # no named parameter: nothing to rewrite
        return CompiledQuery(query, (), positional="$" in query and _has_positional(query))
    names: dict[str, int] = {}
    positional = False
    pieces: list[str] = []
    copied = 0
    for span_start, span_end in code_spans(query):
        for token in _CODE_TOKEN.finditer(query, span_start, span_end):
            text = token.group()
            if text.startswith("::"):
                continue
            if text.startswith("$"):
                positional = True
                continue
            pieces.append(query[copied : token.start()])
            if text == "\\:":
                pieces.append(":")
            else:
                number = names.setdefault(token.group(1), len(names) + first_index)
                pieces.append(f"${number}")
            copied = token.end()
    if names and positional:
        raise QueryParameterError(
            "the query mixes named (:name) and positional ($n) parameters; use one style"
        )
    pieces.append(query[copied:])
    return CompiledQuery("".join(pieces), tuple(names), positional)


def _has_positional(query: str) -> bool:
    return any(
        token.group().startswith("$")
        for start, end in code_spans(query)
        for token in _CODE_TOKEN.finditer(query, start, end)
    )
