"""Streaming readers of import files: each yields ``(row number, {field: value})``.

Memory holds one chunk of the file and one row: JSON arrays are decoded object by object,
XML is parsed with expat as it is read, Parquet a record batch at a time. XML that declares a
DOCTYPE (where entities, and so expansion bombs and external entities, live) is refused.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Final
from xml.parsers import expat

from app.data.errors import MalformedImportError, UnsafeXMLError
from app.data.transfer.parquet_support import pyarrow_modules

__all__ = ["read_json", "read_parquet", "read_xml"]

CHUNK_CHARS: Final = 64 * 1024
_WHITESPACE: Final = " \t\r\n"


class _JsonArrayReader:
    """Objects of a top-level JSON array, one at a time, without loading the whole file."""

    def __init__(self, handle: IO[str], max_row_chars: int) -> None:
        self._handle = handle
        self._buffer = ""
        self._eof = False
        self._max = max_row_chars
        self._decoder = json.JSONDecoder()

    def _fill(self) -> bool:
        chunk = self._handle.read(CHUNK_CHARS)
        if not chunk:
            self._eof = True
            return False
        self._buffer += chunk
        return True

    def _next_char(self, row: int) -> str:
        while True:
            self._buffer = self._buffer.lstrip(_WHITESPACE)
            if self._buffer:
                return self._buffer[0]
            if not self._fill():
                raise MalformedImportError("the JSON array ends early (no closing ])", row=row)

    def rows(self) -> Iterator[tuple[int, Any]]:
        if self._next_char(1) != "[":
            raise MalformedImportError("a JSON import must be an array of objects", row=1)
        self._buffer = self._buffer[1:]
        row = 0
        while True:
            char = self._next_char(row + 1)
            if char == "]":
                break
            if row > 0:
                if char != ",":
                    raise MalformedImportError("expected ',' or ']' after a row", row=row)
                self._buffer = self._buffer[1:]
                self._next_char(row + 1)
            row += 1
            yield row, self._decode(row)
        if self._buffer[1:].strip(_WHITESPACE) or self._fill():
            raise MalformedImportError("text after the JSON array's closing ]", row=row)

    def _decode(self, row: int) -> Any:
        while True:
            try:
                value, end = self._decoder.raw_decode(self._buffer)
            except json.JSONDecodeError as exc:
                if len(self._buffer) > self._max:
                    raise MalformedImportError(
                        f"a row is larger than {self._max} characters", row=row
                    ) from None
                if self._eof or not self._fill():
                    raise MalformedImportError(f"invalid JSON: {exc.msg}", row=row) from None
                continue
            if end == len(self._buffer) and not self._eof and self._fill():
                continue  # a number at the chunk's edge may go on in the next chunk
            self._buffer = self._buffer[end:]
            return value


def read_json(path: Path, max_row_chars: int) -> Iterator[tuple[int, dict[str, Any]]]:
    """Rows of a JSON array of objects."""
    with open(path, encoding="utf-8") as handle:
        try:
            for row, value in _JsonArrayReader(handle, max_row_chars).rows():
                if not isinstance(value, dict):
                    raise MalformedImportError("expected a JSON object", row=row)
                yield row, value
        except UnicodeDecodeError as exc:
            raise MalformedImportError(f"the file is not UTF-8: {exc}") from None


class _XmlRows:
    """expat handlers collecting ``<item><field>text</field>...</item>`` rows."""

    def __init__(self, item: str) -> None:
        self.item = item
        self.ready: list[tuple[int, dict[str, Any]]] = []
        self.row = 0
        self._depth = 0
        self._current: dict[str, Any] | None = None
        self._field: str | None = None
        self._text: list[str] = []

    def start(self, name: str, attrs: dict[str, str]) -> None:
        self._depth += 1
        if self._depth == 2:
            if name != self.item:
                raise MalformedImportError(
                    f"expected <{self.item}>, got <{name}>", row=self.row + 1
                )
            self.row += 1
            self._current = {}
        elif self._depth == 3:
            self._field, self._text = name, []
        elif self._depth > 3:
            raise MalformedImportError(
                "fields hold text, not elements", row=self.row, field=self._field
            )

    def end(self, name: str) -> None:
        if self._depth == 3 and self._current is not None:
            if name in self._current:
                raise MalformedImportError("field given twice", row=self.row, field=name)
            self._current[name] = "".join(self._text)
            self._field = None
        elif self._depth == 2 and self._current is not None:
            self.ready.append((self.row, self._current))
            self._current = None
        self._depth -= 1

    def data(self, text: str) -> None:
        if self._field is not None:
            self._text.append(text)


def _refuse(*_args: object) -> None:
    raise UnsafeXMLError(
        "XML with a DOCTYPE or entity declarations is refused (entity expansion and external "
        "entities are not allowed)"
    )


def read_xml(path: Path, item: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """Rows of ``<root><item><field>text</field>...</item>...</root>``."""
    rows = _XmlRows(item)
    parser = expat.ParserCreate(encoding=None)
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartDoctypeDeclHandler = _refuse
    parser.EntityDeclHandler = _refuse
    parser.ExternalEntityRefHandler = _refuse  # type: ignore[assignment]
    parser.StartElementHandler = rows.start
    parser.EndElementHandler = rows.end
    parser.CharacterDataHandler = rows.data
    with open(path, "rb") as handle:
        while True:
            chunk = handle.read(CHUNK_CHARS)
            try:
                parser.Parse(chunk, not chunk)
            except expat.ExpatError as exc:
                raise MalformedImportError(
                    f"invalid XML at line {exc.lineno}: {expat.errors.messages[exc.code]}",
                    row=rows.row or None,
                ) from None
            yield from rows.ready
            rows.ready.clear()
            if not chunk:
                return


def read_parquet(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Rows of a Parquet file, a record batch at a time (pyarrow, the ``parquet`` extra)."""
    _pa, pq = pyarrow_modules("Parquet import")
    try:
        parquet = pq.ParquetFile(str(path))
    except Exception as exc:  # pyarrow raises ArrowInvalid and OSError subclasses alike
        raise MalformedImportError(f"not a readable Parquet file: {exc}") from None
    row = 0
    for batch in parquet.iter_batches(batch_size=2000):
        for values in batch.to_pylist():
            row += 1
            yield row, values
