"""``ImportManager``: message files into the conversations table, all or nothing.

In one transaction: rows go into a temporary staging table (CSV by Postgres' own ``COPY``
from the file; JSON, XML and Parquet parsed a batch at a time in a worker thread and sent with
binary ``COPY``), are checked there in one scan (the first bad row and field, an id given
twice, each named when found), then one ``INSERT ... SELECT`` applies the merge strategy's
conflict rule on the message id: ``append`` refuses ids already stored, ``replace``
overwrites them, ``skip_duplicates`` keeps the stored ones. Rows without a message id get new
ones, in file order. Any error rolls everything back.
"""

from __future__ import annotations

import asyncio
import csv
import re
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import Any, Final, NamedTuple

import asyncpg

from app.data.conversations.history import ConversationHistoryUnit
from app.data.conversations.models import MAX_CONVERSATION_ID_CHARS
from app.data.errors import MalformedImportError, TransferError
from app.data.transfer.formats import (
    MERGE_STRATEGIES,
    MESSAGE_FIELDS,
    ExportFormat,
    ImportCounts,
    MergeStrategy,
    parse_format,
)
from app.data.transfer.readers import read_json, read_parquet, read_xml
from app.data.transfer.rows import StagedRow, check_mapping, coerce_row, mapped_names

__all__ = ["ImportManager"]

BATCH_ROWS: Final = 2000
STAGE: Final = "data_import_stage"
_COPY_CONTEXT: Final = re.compile(r"line (\d+)(?:, column (\w+))?")
_TEXT_COLUMNS: Final = "conversation_id, timestamp, user_input, agent_response, response_time_ms"

# For this transaction only. The merge's per-row EXISTS is costed far above what its hashed
# form does, so Postgres would JIT-compile the statement (optimised and inlined), which costs
# more than the statement; and the sort of the staged rows by file order should not spill to
# disk at the sizes an import usually has (the ``data`` benchmark's import row).
_IMPORT_SETTINGS: Final = "SET LOCAL jit = off; SET LOCAL work_mem = '64MB'"

_CREATE_STAGE: Final = f"""
CREATE TEMP TABLE {STAGE} (
    _row bigint GENERATED ALWAYS AS IDENTITY,
    message_id bigint,
    conversation_id text,
    timestamp timestamptz,
    user_input text,
    agent_response text,
    response_time_ms double precision,
    metadata jsonb
) ON COMMIT DROP
"""

# What makes a staged row bad, field by field, in the order they are reported ($1: the field
# size limit, $2: the conversation id limit). A backstop for CSV, which Postgres reads.
_BAD_FIELDS: Final = (
    (
        "conversation_id",
        "conversation_id IS NULL OR conversation_id = '' OR length(conversation_id) > $2",
    ),
    ("timestamp", "timestamp IS NULL"),
    ("user_input", "user_input IS NULL OR octet_length(user_input) > $1"),
    ("agent_response", "agent_response IS NULL OR octet_length(agent_response) > $1"),
    (
        "response_time_ms",
        "response_time_ms IS NULL OR NOT response_time_ms BETWEEN 0 AND 'Infinity'::float8 "
        "OR response_time_ms = 'Infinity'",
    ),
    ("message_id", "message_id IS NOT NULL AND message_id < 1"),
    (
        "metadata",
        "metadata IS NOT NULL AND (jsonb_typeof(metadata) <> 'object' "
        "OR octet_length(metadata::text) > $1)",
    ),
)
# One scan of the stage: its size, whether every row carries an id, whether an id repeats,
# and the first bad row; what exactly is wrong is asked only when something is.
_SURVEY: Final = f"""
SELECT count(*) AS total, count(message_id) AS with_id,
    count(DISTINCT message_id) AS distinct_ids,
    min(_row) FILTER (WHERE {" OR ".join(f"({condition})" for _, condition in _BAD_FIELDS)})
        AS first_bad
FROM {STAGE}
"""  # noqa: S608 (constant text)
_BAD_FIELD: Final = f"""
SELECT CASE {" ".join(f"WHEN {condition} THEN '{field}'" for field, condition in _BAD_FIELDS)}
END FROM {STAGE} WHERE _row = $3
"""  # noqa: S608 (constant text)
_REPEATED_ID: Final = f"""
SELECT message_id, min(_row) AS first_row, max(_row) AS last_row FROM {STAGE}
WHERE message_id IS NOT NULL GROUP BY message_id HAVING count(*) > 1 ORDER BY 2 LIMIT 1
"""  # noqa: S608 (constant text)


class _Staged(NamedTuple):
    """What the check of the staging table found: its row count, and whether every row
    carries a message id (if not, the new ids are drawn in file order)."""

    total: int
    all_have_ids: bool


def _copy_error(exc: asyncpg.PostgresError) -> MalformedImportError:
    """A Postgres COPY error as the row (data line) and column it names."""
    context = getattr(exc, "context", None) or ""
    match = _COPY_CONTEXT.search(context)
    row = int(match.group(1)) - 1 if match else None  # line 1 is the header
    field = match.group(2) if match else None
    return MalformedImportError(getattr(exc, "message", str(exc)), row=row, field=field)


class ImportManager:
    """Imports message files into a history unit's table."""

    def __init__(
        self, history: ConversationHistoryUnit, *, max_field_bytes: int | None = None
    ) -> None:
        self.history = history
        self.max_field_bytes = max_field_bytes or history.max_field_bytes

    async def import_conversations(
        self,
        input_file: str | Path,
        format: ExportFormat | str,
        merge_strategy: MergeStrategy = "append",
        field_mapping: Mapping[str, str] | None = None,
    ) -> ImportCounts:
        """Import every row of ``input_file`` or none; the counts of what happened (CV5)."""
        fmt = parse_format(format)
        if merge_strategy not in MERGE_STRATEGIES:
            raise TransferError(
                f"merge_strategy must be one of {list(MERGE_STRATEGIES)}; got {merge_strategy!r}"
            )
        mapping = check_mapping(field_mapping)
        path = Path(input_file)
        if not await asyncio.to_thread(path.is_file):
            raise TransferError(f"import file {path} does not exist or is not a file")
        history = self.history
        async with history.connection("import_conversations") as conn, conn.transaction():
            await conn.execute(_IMPORT_SETTINGS)
            await conn.execute(_CREATE_STAGE)
            if fmt is ExportFormat.CSV:
                await self._stage_csv(conn, path, mapping)
            else:
                await conn.copy_records_to_table(
                    STAGE, records=self._batches(fmt, path, mapping), columns=MESSAGE_FIELDS
                )
            staged = await self._check_stage(conn)
            counts = await self._merge(conn, merge_strategy, staged)
        return counts

    # -- staging ----------------------------------------------------------------------------

    async def _stage_csv(self, conn: Any, path: Path, mapping: dict[str, str]) -> None:
        header = await asyncio.to_thread(_csv_header, path)
        columns = mapped_names(header, mapping, row=None)
        try:
            await conn.copy_to_table(
                STAGE, source=str(path), columns=columns, format="csv", header=True
            )
        except (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError) as exc:
            raise _copy_error(exc) from None
        except asyncpg.PostgresError as exc:
            if getattr(exc, "sqlstate", "").startswith("22"):  # data exception
                raise _copy_error(exc) from None
            raise

    async def _batches(
        self, fmt: ExportFormat, path: Path, mapping: dict[str, str]
    ) -> AsyncIterator[StagedRow]:
        rows = self._rows(fmt, path, mapping)
        while batch := await asyncio.to_thread(_take, rows, BATCH_ROWS):
            for row in batch:
                yield row

    def _rows(self, fmt: ExportFormat, path: Path, mapping: dict[str, str]) -> Iterator[StagedRow]:
        limit = self.max_field_bytes
        if fmt is ExportFormat.JSON:
            source = read_json(path, max_row_chars=4 * limit + 65536)
        elif fmt is ExportFormat.XML:
            source = read_xml(path, "message")
        else:
            source = read_parquet(path)
        names_seen: dict[tuple[str, ...], list[str]] = {}
        for row, raw in source:
            keys = tuple(raw)
            renamed = names_seen.get(keys)
            if renamed is None:
                renamed = mapped_names(list(keys), mapping, row=row)
                names_seen[keys] = renamed
            yield coerce_row(dict(zip(renamed, raw.values(), strict=True)), row, limit)

    async def _check_stage(self, conn: Any) -> _Staged:
        limits = (self.max_field_bytes, MAX_CONVERSATION_ID_CHARS)
        survey = await conn.fetchrow(_SURVEY, *limits)
        if survey["first_bad"] is not None:
            row = survey["first_bad"]
            field = await conn.fetchval(_BAD_FIELD, *limits, row)
            raise MalformedImportError(
                "missing, empty, out of range or too large", row=row, field=field
            )
        if survey["distinct_ids"] < survey["with_id"]:
            repeated = await conn.fetchrow(_REPEATED_ID)
            raise MalformedImportError(
                f"message_id {repeated['message_id']} appears again at row {repeated['last_row']}",
                row=repeated["first_row"],
                field="message_id",
            )
        return _Staged(survey["total"], all_have_ids=survey["with_id"] == survey["total"])

    # -- merging ----------------------------------------------------------------------------

    async def _merge(self, conn: Any, strategy: str, staged: _Staged) -> ImportCounts:
        table = self.history.table
        sequence = await conn.fetchval(self.history._sequence_sql)
        if strategy == "append":
            clash = await conn.fetchrow(
                f"SELECT s._row, s.message_id FROM {STAGE} s JOIN {table} t ON t.id = s.message_id "  # noqa: S608
                "ORDER BY s._row LIMIT 1"
            )
            if clash is not None:
                raise MalformedImportError(
                    f"message_id {clash['message_id']} is already stored (merge_strategy "
                    "'append' adds new messages; use 'replace' or 'skip_duplicates')",
                    row=clash["_row"],
                    field="message_id",
                )
        source = (
            f"SELECT COALESCE(message_id, nextval($1::regclass)), {_TEXT_COLUMNS}, "  # noqa: S608
            f"COALESCE(metadata, '{{}}'::jsonb) FROM {STAGE}"
        )
        if strategy == "skip_duplicates":
            # Rows already stored are left out before the insert: an INSERT computes the
            # generated tsvector of every row it is given, even one its conflict rule drops.
            source += (
                " WHERE message_id IS NULL OR NOT EXISTS "  # noqa: S608 (quoted identifiers)
                f"(SELECT 1 FROM {table} AS stored WHERE stored.id = {STAGE}.message_id)"
            )
        insert = f"INSERT INTO {table} (id, {_TEXT_COLUMNS}, metadata) {source}"
        if not staged.all_have_ids:
            insert += " ORDER BY _row"  # new ids are drawn in file order
        if strategy == "replace":
            updates = ", ".join(
                f"{name} = EXCLUDED.{name}" for name in (*_TEXT_COLUMNS.split(", "), "metadata")
            )
            sql = (
                f"WITH written AS ({insert} ON CONFLICT (id) DO UPDATE SET {updates} "  # noqa: S608
                "RETURNING (xmax = 0) AS fresh) "
                "SELECT count(*) FILTER (WHERE fresh), count(*) FILTER (WHERE NOT fresh) "
                "FROM written"
            )
            inserted, updated = await conn.fetchrow(sql, sequence)
        elif strategy == "skip_duplicates":
            inserted, updated = await _insert_skipping(conn, insert, sequence), 0
        else:  # append: a stored id was refused above
            inserted, updated = _row_count(await conn.execute(insert, sequence)), 0
        # Ids taken from the file may be past the sequence: move it beyond them.
        await conn.execute(
            f"SELECT setval($1::regclass, GREATEST((SELECT max(id) FROM {table}), "  # noqa: S608
            "nextval($1::regclass)))",
            sequence,
        )
        total = staged.total
        return ImportCounts(total, inserted, updated, total - inserted - updated)


async def _insert_skipping(conn: Any, insert: str, sequence: str) -> int:
    """Run ``insert`` (whose rows exclude the stored ids) and return how many rows it wrote.
    A row another writer stored meanwhile is skipped too: the plain insert runs in a
    savepoint, and only if it meets such a row does it run again with ``ON CONFLICT DO
    NOTHING``, whose speculative insertion costs every row (the ``data`` benchmark's
    import row)."""
    try:
        async with conn.transaction():
            return _row_count(await conn.execute(insert, sequence))
    except asyncpg.UniqueViolationError:
        return _row_count(await conn.execute(f"{insert} ON CONFLICT (id) DO NOTHING", sequence))


def _row_count(status: str) -> int:
    """The row count of an ``INSERT 0 <n>`` command status."""
    return int(status.rsplit(" ", 1)[1])


def _csv_header(path: Path) -> list[str]:
    with open(path, encoding="utf-8", newline="") as handle:
        try:
            header = next(csv.reader(handle), None)
        except (csv.Error, UnicodeDecodeError) as exc:
            raise MalformedImportError(f"unreadable CSV header: {exc}", row=0) from None
    if not header:
        raise MalformedImportError("the CSV file is empty (a header row is required)", row=0)
    return header


def _take(rows: Iterator[StagedRow], count: int) -> list[StagedRow]:
    batch = []
    for row in rows:
        batch.append(row)
        if len(batch) >= count:
            break
    return batch
