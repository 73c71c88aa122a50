"""Row writers for export files: JSON, XML, CSV and Parquet, fed a batch at a time.

Writers are synchronous; the exporter calls them in a worker thread, one batch per call, so
memory holds one batch. Rows are tuples in the order of ``fields``; a ``metadata`` value is
JSON text (as Postgres hands out ``jsonb``), datetimes are timezone-aware.
"""

from __future__ import annotations

import csv
import json
import re
from datetime import datetime
from pathlib import Path
from typing import IO, Any, Final, Protocol
from xml.sax.saxutils import escape

from app.data.errors import UnrepresentableError
from app.data.transfer.formats import ExportFormat
from app.data.transfer.parquet_support import message_schema, pyarrow_modules

__all__ = ["RowWriter", "open_writer"]

# Characters XML 1.0 cannot carry at all (a CR is kept as a character reference).
_NOT_XML: Final = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


class RowWriter(Protocol):
    """Writes rows of one file; ``close`` finishes it."""

    def write(self, rows: list[tuple[Any, ...]]) -> None: ...

    def close(self) -> None: ...


def _text(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class JsonWriter:
    """A JSON array with one object per line (the importer streams it back)."""

    def __init__(self, handle: IO[str], fields: tuple[str, ...]) -> None:
        self._handle = handle
        self._fields = fields
        self._first = True
        handle.write("[")

    def write(self, rows: list[tuple[Any, ...]]) -> None:
        parts = []
        for row in rows:
            items = []
            for name, value in zip(self._fields, row, strict=True):
                if name == "metadata":
                    encoded = value if isinstance(value, str) else json.dumps(value)
                elif isinstance(value, datetime):
                    encoded = json.dumps(value.isoformat())
                else:
                    encoded = json.dumps(value, ensure_ascii=False, allow_nan=False)
                items.append(f"{json.dumps(name)}: {encoded}")
            parts.append(("\n" if self._first else ",\n") + "{" + ", ".join(items) + "}")
            self._first = False
        self._handle.write("".join(parts))

    def close(self) -> None:
        self._handle.write("\n]\n")


class XmlWriter:
    """``<conversations><message><field>text</field>...</message>...</conversations>``."""

    def __init__(self, handle: IO[str], fields: tuple[str, ...], root: str, item: str) -> None:
        self._handle = handle
        self._fields = fields
        self._root = root
        self._item = item
        handle.write(f'<?xml version="1.0" encoding="utf-8"?>\n<{root}>\n')

    def write(self, rows: list[tuple[Any, ...]]) -> None:
        parts = []
        for row in rows:
            parts.append(f"  <{self._item}>")
            for name, value in zip(self._fields, row, strict=True):
                if value is None:
                    continue
                text = _text(value)
                if _NOT_XML.search(text):
                    raise UnrepresentableError(
                        f"{self._item} {row[0]!r}: field {name!r} holds a control character "
                        "XML 1.0 cannot carry; export it as JSON, CSV or Parquet"
                    )
                parts.append(f"<{name}>{escape(text, {chr(13): '&#13;'})}</{name}>")
            parts.append(f"</{self._item}>\n")
        self._handle.write("".join(parts))

    def close(self) -> None:
        self._handle.write(f"</{self._root}>\n")


class CsvWriter:
    """RFC 4180 CSV with a header row (session exports; messages go through COPY)."""

    def __init__(self, handle: IO[str], fields: tuple[str, ...]) -> None:
        self._writer = csv.writer(handle)
        self._writer.writerow(fields)

    def write(self, rows: list[tuple[Any, ...]]) -> None:
        self._writer.writerows([[_text(v) if v is not None else "" for v in r] for r in rows])

    def close(self) -> None:
        return


class ParquetWriter:
    """A Parquet file, one row group per batch (pyarrow, the ``parquet`` extra)."""

    def __init__(self, path: Path, fields: tuple[str, ...]) -> None:
        self._pa, pq = pyarrow_modules("Parquet export")
        self._schema = message_schema(self._pa, fields)
        self._fields = fields
        self._writer = pq.ParquetWriter(str(path), self._schema)

    def write(self, rows: list[tuple[Any, ...]]) -> None:
        if not rows:
            return
        columns = list(zip(*rows, strict=True))
        arrays = [
            self._pa.array(list(column), type=self._schema.field(index).type)
            for index, column in enumerate(columns)
        ]
        self._writer.write_table(self._pa.Table.from_arrays(arrays, schema=self._schema))

    def close(self) -> None:
        self._writer.close()


def open_writer(
    fmt: ExportFormat, path: Path, fields: tuple[str, ...], *, root: str, item: str
) -> tuple[RowWriter, IO[str] | None]:
    """The writer for ``fmt`` on ``path`` and the text handle to close after (None for
    Parquet, which owns its file)."""
    if fmt is ExportFormat.PARQUET:
        return ParquetWriter(path, fields), None
    handle = open(path, "w", encoding="utf-8", newline="")  # noqa: SIM115 (closed by the caller)
    writer: RowWriter
    if fmt is ExportFormat.JSON:
        writer = JsonWriter(handle, fields)
    elif fmt is ExportFormat.XML:
        writer = XmlWriter(handle, fields, root, item)
    else:
        writer = CsvWriter(handle, fields)
    return writer, handle
