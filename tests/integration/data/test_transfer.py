"""Contract F, CV5: export then import round-trips every format; merges count; bad files fail."""

from __future__ import annotations

import asyncio
import builtins
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from app.data import (
    ConversationHistoryUnit,
    ConversationMessage,
    ExportFormat,
    ExportManager,
    FieldMappingError,
    ImportManager,
    MalformedImportError,
    MissingExtraError,
    SessionManager,
    UnrepresentableError,
    UnsafeXMLError,
)

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 1, 9, 30, 15, 123456, tzinfo=UTC)
FORMATS = list(ExportFormat)


def tricky_messages() -> list[ConversationMessage]:
    """Messages with text that trips naive writers: quotes, commas, newlines, CR, unicode."""
    texts = [
        'a "quoted", comma',
        "line one\nline two\r\nthree",
        "  leading and trailing  ",
        "émoji 🎉 <tag> & </tag>",
        "",
    ]
    metadatas: list[dict[str, Any]] = [
        {},
        {"a": [1, 2.5, None]},
        {"nested": {"k": "v"}},
        {"n": 1},
        {"t": True},
    ]
    return [
        ConversationMessage(
            conversation_id=f"conv-{i % 2}",
            user_input=text,
            agent_response=text[::-1] or "x",
            timestamp=T0 + timedelta(seconds=i, microseconds=i),
            response_time_ms=[0.1, 1e-7, 12345.678901234, 0, 3][i],
            metadata=metadatas[i],
        )
        for i, text in enumerate(texts)
    ]


async def rows(pool: asyncpg.Pool, table: str) -> list[tuple[Any, ...]]:
    """Every stored row of ``table`` as plain tuples, by id."""
    records = await pool.fetch(
        "SELECT id, conversation_id, timestamp, user_input, agent_response, response_time_ms, "
        f"metadata::jsonb FROM {table} ORDER BY id"
    )
    return [tuple(record) for record in records]


@pytest.mark.parametrize("fmt", FORMATS)
async def test_cv5_export_then_import_into_an_empty_store_gives_identical_rows(
    history: ConversationHistoryUnit,
    pg_pool: asyncpg.Pool,
    schema: str,
    tmp_path: Path,
    fmt: ExportFormat,
) -> None:
    """CV5: every format carries ids, times (µs), floats, text and metadata exactly."""
    await history.save_messages_batch(tricky_messages())
    path = tmp_path / f"out.{fmt.value}"
    written = await ExportManager(history).export_conversations(None, fmt, path)
    assert written == 5
    target = ConversationHistoryUnit(pg_pool, f"{schema}.copy")
    await target.initialize()
    counts = await ImportManager(target).import_conversations(path, fmt)
    assert counts.as_dict() == {"total": 5, "inserted": 5, "updated": 0, "skipped": 0}
    assert await rows(pg_pool, target.table) == await rows(pg_pool, history.table)
    new_id = await target.save_message(tricky_messages()[0])
    assert new_id > max(row[0] for row in await rows(pg_pool, history.table))


@pytest.mark.parametrize("fmt", FORMATS)
async def test_cv5_merge_strategies_report_counts(
    history: ConversationHistoryUnit, tmp_path: Path, fmt: ExportFormat
) -> None:
    """CV5: skip_duplicates skips stored ids, replace overwrites them, append refuses them."""
    await history.save_messages_batch(tricky_messages())
    path = tmp_path / f"all.{fmt.value}"
    await ExportManager(history).export_conversations(None, fmt, path)
    await history.delete_conversation("conv-0")  # 3 of the 5 messages
    importer = ImportManager(history)
    skipped = await importer.import_conversations(path, fmt, merge_strategy="skip_duplicates")
    assert skipped.as_dict() == {"total": 5, "inserted": 3, "updated": 0, "skipped": 2}
    replaced = await importer.import_conversations(path, fmt, merge_strategy="replace")
    assert replaced.as_dict() == {"total": 5, "inserted": 0, "updated": 5, "skipped": 0}
    with pytest.raises(MalformedImportError, match="already stored"):
        await importer.import_conversations(path, fmt, merge_strategy="append")
    assert len(await history.get_conversation_history("conv-0")) == 3


async def test_cv5_skip_duplicates_skips_a_row_another_writer_stores_meanwhile(
    history: ConversationHistoryUnit,
    pg_pool: asyncpg.Pool,
    postgres_dsn: str,
    tmp_path: Path,
) -> None:
    """CV5: an id of the file that another transaction stores while the import runs is
    skipped, its row kept as that writer stored it, and the rest is imported."""
    await history.save_messages_batch(tricky_messages())
    path = tmp_path / "all.csv"
    await ExportManager(history).export_conversations(None, "csv", path)
    stored = await rows(pg_pool, history.table)
    await pg_pool.execute(f"TRUNCATE {history.table}")
    taken_id = stored[2][0]
    other = await asyncpg.connect(postgres_dsn)
    try:
        writer = other.transaction()
        await writer.start()
        await other.execute(
            f"INSERT INTO {history.table} (id, conversation_id, timestamp, user_input, "
            "agent_response, response_time_ms) VALUES ($1, 'theirs', now(), 'q', 'a', 1)",
            taken_id,
        )
        # The import's insert of taken_id waits for this transaction, then meets the row.
        importing = asyncio.create_task(
            ImportManager(history).import_conversations(path, "csv", "skip_duplicates")
        )
        await asyncio.sleep(0.5)
        assert not importing.done()
        await writer.commit()
        counts = await asyncio.wait_for(importing, 10)
    finally:
        await other.close()
    assert counts.as_dict() == {"total": 5, "inserted": 4, "updated": 0, "skipped": 1}
    after = {row[0]: row for row in await rows(pg_pool, history.table)}
    assert after[taken_id][1] == "theirs"
    assert [after[row[0]] for row in stored if row[0] != taken_id] == [
        row for row in stored if row[0] != taken_id
    ]


async def test_export_selects_conversations_fields_and_drops_metadata(
    history: ConversationHistoryUnit, tmp_path: Path
) -> None:
    """Only the asked conversations and fields are written; include_metadata=False drops it."""
    await history.save_messages_batch(tricky_messages())
    path = tmp_path / "some.json"
    exporter = ExportManager(history)
    count = await exporter.export_conversations(
        ["conv-1"], "JSON", path, include_metadata=False, fields=["conversation_id", "metadata"]
    )
    assert count == 2
    assert json.loads(path.read_text()) == [{"conversation_id": "conv-1"}] * 2
    with pytest.raises(FieldMappingError, match="unknown field"):
        await exporter.export_conversations(None, "json", path, fields=["password"])


async def test_import_renames_fields_with_field_mapping(
    history: ConversationHistoryUnit, tmp_path: Path
) -> None:
    """field_mapping maps a file's own names to message fields; an unknown target is refused."""
    path = tmp_path / "theirs.csv"
    path.write_text("chat,when,question,answer,ms\nc9,2026-01-01T00:00:00+00:00,hi,hello,5\n")
    mapping = {
        "chat": "conversation_id",
        "when": "timestamp",
        "question": "user_input",
        "answer": "agent_response",
        "ms": "response_time_ms",
    }
    counts = await ImportManager(history).import_conversations(path, "csv", field_mapping=mapping)
    assert counts.inserted == 1
    (stored,) = await history.get_conversation_history("c9")
    assert (stored.user_input, stored.agent_response, stored.metadata) == ("hi", "hello", {})
    with pytest.raises(FieldMappingError, match="'nope'"):
        await ImportManager(history).import_conversations(
            path, "csv", field_mapping={"chat": "nope"}
        )


BAD_FILES: list[tuple[str, str, str, type[Exception]]] = [
    (
        "csv",
        "conversation_id,timestamp,user_input,agent_response,response_time_ms\n"
        "c,2026-01-01T00:00:00Z,a,b,1\nc,not-a-time,a,b,1\n",
        r"row 2, field 'timestamp'",
        MalformedImportError,
    ),
    (
        "csv",
        "conversation_id,timestamp,user_input,agent_response,response_time_ms\n"
        "c,2026-01-01T00:00:00Z,a,b,1\nc,2026-01-01T00:00:00Z,a,b,-4\n",
        r"row 2, field 'response_time_ms'",
        MalformedImportError,
    ),
    (
        "csv",
        "conversation_id,timestamp,user_input,agent_response,response_time_ms,colour\n",
        r"field 'colour': unknown field",
        MalformedImportError,
    ),
    (
        "json",
        '[{"conversation_id": "c", "timestamp": "2026-01-01T00:00:00+00:00", "user_input": "a",'
        ' "agent_response": "b", "response_time_ms": 1},\n{"conversation_id": "c", broken',
        r"row 2: invalid JSON",
        MalformedImportError,
    ),
    (
        "json",
        '[{"conversation_id": "c", "timestamp": "2026-01-01T00:00:00", "user_input": "a",'
        ' "agent_response": "b", "response_time_ms": 1}]',
        r"row 1, field 'timestamp': expected a date-time with a UTC offset",
        MalformedImportError,
    ),
    (
        "json",
        '[{"conversation_id": "c", "timestamp": "2026-01-01T00:00:00+00:00", "user_input": "a",'
        ' "agent_response": "b", "response_time_ms": 1, "message_id": 7},'
        '{"conversation_id": "c", "timestamp": "2026-01-01T00:00:00+00:00", "user_input": "a",'
        ' "agent_response": "b", "response_time_ms": 1, "message_id": 7}]',
        r"row 1, field 'message_id': message_id 7 appears again at row 2",
        MalformedImportError,
    ),
    (
        "xml",
        '<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 '
        '"&lol;&lol;&lol;&lol;">]>\n<conversations><message><user_input>&lol2;</user_input>'
        "</message></conversations>",
        "DOCTYPE",
        UnsafeXMLError,
    ),
    (
        "xml",
        '<?xml version="1.0"?>\n<!DOCTYPE x [<!ENTITY ext SYSTEM "file:///etc/passwd">]>\n'
        "<conversations><message><user_input>&ext;</user_input></message></conversations>",
        "external entities",
        UnsafeXMLError,
    ),
    (
        "xml",
        "<conversations><message><conversation_id>c</conversation_id><wat>1</wat></message>"
        "</conversations>",
        r"row 1, field 'wat': unknown field",
        MalformedImportError,
    ),
]


@pytest.mark.parametrize(("fmt", "content", "message", "error"), BAD_FILES)
async def test_cv5_malformed_files_name_row_and_field_and_import_nothing(
    history: ConversationHistoryUnit,
    tmp_path: Path,
    fmt: str,
    content: str,
    message: str,
    error: type[Exception],
) -> None:
    """CV5: a malformed or hostile file is an error naming row and field; nothing is stored."""
    path = tmp_path / f"bad.{fmt}"
    path.write_text(content)
    with pytest.raises(error, match=message):
        await ImportManager(history).import_conversations(path, fmt)
    assert await history.search_conversations("a", 10) == []
    assert await history.get_conversation_history("c") == []


CSV_HEADER = (
    "message_id,conversation_id,timestamp,user_input,agent_response,response_time_ms,metadata\n"
)
GOOD_CSV_ROW = '1,c,2026-01-01T00:00:00Z,a,b,1,"{}"\n'
# Rows Postgres parses but the staging check refuses (CSV is read by Postgres, so these
# reach the stage): each names its field, on the file's second row. max_field_bytes is 16.
STAGE_REFUSALS: list[tuple[str, str]] = [
    ('2,,2026-01-01T00:00:00Z,a,b,1,"{}"\n', "conversation_id"),
    (f'2,{"c" * 257},2026-01-01T00:00:00Z,a,b,1,"{{}}"\n', "conversation_id"),
    ('2,c,,a,b,1,"{}"\n', "timestamp"),
    (f'2,c,2026-01-01T00:00:00Z,{"é" * 9},b,1,"{{}}"\n', "user_input"),
    ('2,c,2026-01-01T00:00:00Z,a,,1,"{}"\n', "agent_response"),
    ('2,c,2026-01-01T00:00:00Z,a,b,Infinity,"{}"\n', "response_time_ms"),
    ('2,c,2026-01-01T00:00:00Z,a,b,NaN,"{}"\n', "response_time_ms"),
    ('0,c,2026-01-01T00:00:00Z,a,b,1,"{}"\n', "message_id"),
    ('2,c,2026-01-01T00:00:00Z,a,b,1,"[1]"\n', "metadata"),
    ('2,c,2026-01-01T00:00:00Z,a,b,1,"{""k"": ""0123456789abcdef""}"\n', "metadata"),
]


@pytest.mark.parametrize(("row", "field"), STAGE_REFUSALS)
async def test_cv5_csv_rows_refused_by_the_staging_check_name_row_and_field(
    history: ConversationHistoryUnit, tmp_path: Path, row: str, field: str
) -> None:
    """CV5: what the typed staging columns accept but a message may not hold is refused,
    naming the row and field, and nothing is stored."""
    path = tmp_path / "bad.csv"
    path.write_text(CSV_HEADER + GOOD_CSV_ROW + row, encoding="utf-8")
    importer = ImportManager(history, max_field_bytes=16)
    with pytest.raises(MalformedImportError, match=rf"row 2, field '{field}'"):
        await importer.import_conversations(path, "csv")
    assert await history.get_conversation_history("c") == []


async def test_cv5_a_message_id_repeated_in_a_csv_file_names_both_rows(
    history: ConversationHistoryUnit, tmp_path: Path
) -> None:
    """CV5: an id given twice in one file is refused (which copy would win is undefined)."""
    path = tmp_path / "twice.csv"
    repeat = '1,c,2026-01-01T00:00:01Z,again,b,1,"{}"\n'
    path.write_text(CSV_HEADER + GOOD_CSV_ROW + repeat.replace("1,c", "2,c", 1) + repeat)
    with pytest.raises(MalformedImportError, match=r"row 1, field 'message_id'.*again at row 3"):
        await ImportManager(history).import_conversations(path, "csv")
    assert await history.get_conversation_history("c") == []


async def test_cv5_rows_without_a_message_id_get_new_ids_in_file_order(
    history: ConversationHistoryUnit, tmp_path: Path
) -> None:
    """CV5: ids drawn for rows that carry none follow the file's order; given ids are kept."""
    lines = [
        f'{"" if i % 3 else 1000 + i},c,2026-01-01T00:00:00Z,{i:02d},b,1,"{{}}"\n'
        for i in range(30)
    ]
    path = tmp_path / "mixed.csv"
    path.write_text(CSV_HEADER + "".join(lines))
    counts = await ImportManager(history).import_conversations(path, "csv")
    assert counts.inserted == 30
    stored = await history.get_conversation_history("c", 100)
    given = {int(m.user_input): m.message_id for m in stored if int(m.user_input) % 3 == 0}
    assert given == {i: 1000 + i for i in range(0, 30, 3)}
    drawn = sorted((m.message_id, int(m.user_input)) for m in stored if int(m.user_input) % 3)
    assert [position for _, position in drawn] == [i for i in range(30) if i % 3]


async def test_cv5_parquet_with_the_wrong_schema_is_refused(
    history: ConversationHistoryUnit, tmp_path: Path
) -> None:
    """CV5: a Parquet file whose timestamp column is an int names row 1 and the field."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table(
        {
            "conversation_id": ["c"],
            "timestamp": [1234],
            "user_input": ["a"],
            "agent_response": ["b"],
            "response_time_ms": [1.0],
        }
    )
    path = tmp_path / "wrong.parquet"
    pq.write_table(table, str(path))
    with pytest.raises(MalformedImportError, match=r"row 1, field 'timestamp'"):
        await ImportManager(history).import_conversations(path, "parquet")
    assert await history.get_conversation_history("c") == []


async def test_parquet_without_pyarrow_names_the_extra(
    history: ConversationHistoryUnit, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without pyarrow, Parquet export says to install the 'parquet' extra."""
    real_import = builtins.__import__
    for name in [n for n in sys.modules if n == "pyarrow" or n.startswith("pyarrow.")]:
        monkeypatch.delitem(sys.modules, name)

    def no_pyarrow(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "pyarrow" or name.startswith("pyarrow."):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pyarrow)
    with pytest.raises(MissingExtraError, match=r'pip install -e "\.\[parquet\]"'):
        await ExportManager(history).export_conversations(None, "parquet", tmp_path / "x.pq")
    assert not (tmp_path / "x.pq").exists()


@pytest.mark.parametrize("fmt", FORMATS)
async def test_export_sessions_writes_live_sessions_without_touching_them(
    tmp_path: Path, fmt: ExportFormat
) -> None:
    """Sessions export writes the live ones asked for and leaves their activity unchanged."""
    sessions = SessionManager()
    first = await sessions.create_session("u1", {"role": "admin"})
    await sessions.create_session("u2")
    path = tmp_path / f"sessions.{fmt.value}"
    count = await ExportManager(sessions=sessions).export_sessions(
        [first.session_id, "missing"], fmt, path
    )
    assert count == 1
    assert first.session_id in path.read_bytes().decode("utf-8", "replace") or fmt is (
        ExportFormat.PARQUET
    )
    peeked = await sessions.peek_session(first.session_id)
    assert peeked is not None
    assert peeked.last_activity == first.last_activity


async def test_xml_export_of_a_control_character_is_refused_and_leaves_no_file(
    history: ConversationHistoryUnit, tmp_path: Path
) -> None:
    """Text XML 1.0 cannot carry is an UnrepresentableError (a 422 over HTTP), no file left."""
    await history.save_message(ConversationMessage("c", "bell \x07", "ok", T0, 1.0))
    path = tmp_path / "c.xml"
    with pytest.raises(UnrepresentableError, match="control character"):
        await ExportManager(history).export_conversations(["c"], "xml", path)
    assert await asyncio.to_thread(lambda: list(tmp_path.iterdir())) == []
