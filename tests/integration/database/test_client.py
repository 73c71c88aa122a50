"""PostgreSQLClient's query methods against a real Postgres (loopback server and embedded)."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest

from app.database import PostgreSQLClient
from app.errors import (
    DatabaseNotConnectedError,
    InvalidParameterValueError,
    QueryParameterError,
    QuerySyntaxError,
    SqlIdentifierError,
    StatementTimeoutError,
    UndefinedTableError,
    UniqueViolationError,
)

pytestmark = pytest.mark.integration


async def test_fetch_all_with_a_named_parameter(db: PostgreSQLClient, table: str) -> None:
    """fetch_all binds :active by name and returns the rows as dicts."""
    await db.execute(f"INSERT INTO {table} (name, active) VALUES ('a', true), ('b', false)")
    rows = await db.fetch_all(f"SELECT name FROM {table} WHERE active = :active", {"active": True})
    assert rows == [{"name": "a"}]
    assert type(rows[0]) is dict


async def test_fetch_one_returns_a_dict_or_none(db: PostgreSQLClient, table: str) -> None:
    """fetch_one gives the first row as a dict, and None when nothing matches."""
    new_id = await db.insert(table, {"name": "x", "score": 1.5})
    row = await db.fetch_one(f"SELECT id, name, score FROM {table} WHERE id = :id", {"id": new_id})
    assert row == {"id": new_id, "name": "x", "score": 1.5}
    assert await db.fetch_one(f"SELECT * FROM {table} WHERE id = :id", {"id": new_id + 1}) is None


async def test_named_parameter_edge_cases_reach_the_server_intact(db: PostgreSQLClient) -> None:
    """Casts, literals, escape strings, quoted names, comments and $$ bodies keep their colons;
    a repeated name is one parameter."""
    row = await db.fetch_one(
        """SELECT :n::int + :n AS twice,        -- a comment with :not_a_parameter
                  ':lit' AS literal, E'it\\'s :e' AS escaped, 'o''k :q' AS doubled,
                  $$ :body $$ AS body, $tag$ :tagged $tag$ AS tagged,
                  1 AS "quoted:name" /* :block /* nested :x */ */,
                  (ARRAY[10, 20, 30])[2:3] AS slice""",
        {"n": 21},
    )
    assert row == {
        "twice": 42,
        "literal": ":lit",
        "escaped": "it's :e",
        "doubled": "o'k :q",
        "body": " :body ",
        "tagged": " :tagged ",
        "quoted:name": 1,
        "slice": [20, 30],
    }


async def test_a_missing_or_extra_parameter_is_named(db: PostgreSQLClient) -> None:
    """A parameter the query uses but was not given, or one given but unused, is named."""
    with pytest.raises(QueryParameterError, match=r"missing parameter\(s\) :b") as missing:
        await db.fetch_one("SELECT :a::int + :b::int AS s", {"a": 1})
    assert missing.value.missing == ("b",)
    with pytest.raises(QueryParameterError, match=r"extra parameter\(s\) :c") as extra:
        await db.fetch_one("SELECT :a::int AS s", {"a": 1, "c": 2})
    assert extra.value.extra == ("c",)


async def test_a_wrongly_typed_value_names_the_parameter(db: PostgreSQLClient, table: str) -> None:
    """A value asyncpg cannot encode is an InvalidParameterValueError naming :id, not $1."""
    with pytest.raises(InvalidParameterValueError, match=":id") as caught:
        await db.fetch_one(f"SELECT * FROM {table} WHERE id = :id", {"id": "seven"})
    assert isinstance(caught.value.__cause__, asyncpg.DataError)


async def test_insert_returns_the_first_column(db: PostgreSQLClient, table: str) -> None:
    """insert returns the inserted row's first column (the serial id), reserved words work."""
    first = await db.insert(table, {"name": "a", "order": 3})
    second = await db.insert(table, {"Name": "b"})  # folded to lower case, as unquoted SQL
    assert second == first + 1
    rows = await db.fetch_all(f'SELECT name, "order" FROM {table} ORDER BY id')
    assert rows == [{"name": "a", "order": 3}, {"name": "b", "order": None}]


@pytest.mark.parametrize(
    ("target", "data"),
    [
        ("items; DROP TABLE x", {"name": "a"}),
        ("{table}", {"name) VALUES ('a'); --": "b"}),
        ('"{table}"', {"name": "a"}),
        ("a.b.c", {"name": "a"}),
    ],
)
async def test_insert_refuses_names_that_are_not_plain(
    db: PostgreSQLClient, table: str, target: str, data: dict[str, str]
) -> None:
    """A table or column name that is not a plain identifier is refused; nothing is stored."""
    with pytest.raises(SqlIdentifierError, match=r"not a plain identifier|more than one"):
        await db.insert(target.format(table=table), data)
    assert await db.fetch_value(f"SELECT count(*) FROM {table}") == 0


async def test_update_keeps_data_and_where_parameters_apart(
    db: PostgreSQLClient, table: str
) -> None:
    """update returns the rows changed; a where parameter may share a column's name."""
    await db.execute_many(
        f"INSERT INTO {table} (name, score) VALUES (:name, :score)",
        [{"name": "a", "score": 1.0}, {"name": "b", "score": 1.0}, {"name": "c", "score": 2.0}],
    )
    changed = await db.update(table, {"score": 5.0}, "score = :score", {"score": 1.0})
    assert changed == 2
    assert await db.fetch_all(f"SELECT name FROM {table} WHERE score = 5 ORDER BY name") == [
        {"name": "a"},
        {"name": "b"},
    ]
    assert await db.update(table, {"score": 0.0}, "name = :name", {"name": "none"}) == 0


async def test_execute_returns_the_command_tag(db: PostgreSQLClient, table: str) -> None:
    """execute returns Postgres' tag; without parameters it runs several statements."""
    tag = await db.execute(f"INSERT INTO {table} (name) VALUES (:name)", {"name": "a"})
    assert tag == "INSERT 0 1"
    await db.execute(
        f"INSERT INTO {table} (name) VALUES ('b'); INSERT INTO {table} (name) VALUES ('c')"
    )
    assert await db.fetch_value(f"SELECT count(*) FROM {table}") == 3


@pytest.mark.parametrize("rows", [10, 1500])
async def test_execute_many_stores_every_row(db: PostgreSQLClient, table: str, rows: int) -> None:
    """execute_many stores every parameter set (executemany below copy_min_rows, COPY above)."""
    batch = [{"name": f"n{i}", "score": i / 2} for i in range(rows)]
    await db.execute_many(f"INSERT INTO {table} (name, score) VALUES (:name, :score)", batch)
    stored = await db.fetch_all(f"SELECT name, score FROM {table} ORDER BY id")
    assert stored == batch


@pytest.mark.parametrize("rows", [10, 1500])
async def test_execute_many_is_all_or_nothing(db: PostgreSQLClient, table: str, rows: int) -> None:
    """One bad row (a duplicate) fails the whole batch on either path; nothing is stored."""
    batch = [{"name": f"n{i}"} for i in range(rows)] + [{"name": "n0"}]
    with pytest.raises(UniqueViolationError) as caught:
        await db.execute_many(f"INSERT INTO {table} (name) VALUES (:name)", batch)
    assert caught.value.table == table
    assert await db.fetch_value(f"SELECT count(*) FROM {table}") == 0


async def test_execute_many_copy_fills_defaults(db: PostgreSQLClient, table: str) -> None:
    """Through COPY, columns left out take their defaults (serial id, active) as with INSERT."""
    db.copy_min_rows = 2
    await db.execute_many(
        f"INSERT INTO {table} (name) VALUES (:name)", [{"name": "a"}, {"name": "b"}]
    )
    rows = await db.fetch_all(f"SELECT id, name, active FROM {table} ORDER BY id")
    assert [row["active"] for row in rows] == [True, True]
    assert rows[1]["id"] == rows[0]["id"] + 1


async def test_execute_script_is_one_transaction(db: PostgreSQLClient, table: str) -> None:
    """A failing statement in a script undoes the statements before it."""
    with pytest.raises(UndefinedTableError):
        await db.execute_script(
            f"INSERT INTO {table} (name) VALUES ('a'); INSERT INTO no_such_table VALUES (1);"
        )
    assert await db.fetch_value(f"SELECT count(*) FROM {table}") == 0


async def test_initialize_schema_runs_a_file(
    db: PostgreSQLClient, tmp_path: Path, unique_name: str
) -> None:
    """initialize_schema runs the SQL file, $$ bodies and all."""
    schema = tmp_path / "schema.sql"
    schema.write_text(
        f"CREATE TABLE {unique_name} (id int);\n"
        f"CREATE FUNCTION {unique_name}_f() RETURNS int LANGUAGE sql AS $$ SELECT 1; $$;\n"
    )
    await db.initialize_schema(schema)
    try:
        assert await db.fetch_value(f"SELECT {unique_name}_f()") == 1
    finally:
        await db.execute(f"DROP TABLE {unique_name}; DROP FUNCTION {unique_name}_f()")


@pytest.mark.parametrize(
    ("query", "error", "operation_table"),
    [
        ("SELEC 1", QuerySyntaxError, "fetch_all"),
        ("SELECT * FROM no_such_table", UndefinedTableError, "fetch_all on no_such_table"),
        ("SELECT pg_sleep(2)", StatementTimeoutError, "fetch_all"),
        ("INSERT INTO {table} (name) VALUES ('dup'), ('dup')", UniqueViolationError, "{table}"),
    ],
)
async def test_errors_are_typed_and_leave_the_connection_healthy(
    database_dsn: str,
    table: str,
    query: str,
    error: type[Exception],
    operation_table: str,
) -> None:
    """Each failure is its typed error naming the operation (and table), asyncpg's error as the
    cause; the pool's only connection then answers, outside any transaction, settings reset."""
    client = PostgreSQLClient(database_dsn, pool_size=1, max_overflow=0)
    await client.connect()
    try:
        async with client.connection() as session:
            await session.execute("SET statement_timeout = '200ms'")  # reset when released
            with pytest.raises(error, match=operation_table.format(table=table)) as caught:
                await session.fetch_all(query.format(table=table))
        assert isinstance(caught.value.__cause__, asyncpg.PostgresError)
        assert client.pool is not None
        assert client.pool.get_size() == 1
        async with client.connection() as session:
            assert not session.connection.is_in_transaction()
            assert await session.fetch_value("SHOW statement_timeout") == "0"
            assert await session.fetch_value("SELECT 1") == 1
    finally:
        await client.close()


async def test_a_closed_client_says_so(database_dsn: str) -> None:
    """Queries before connect() or after close() raise DatabaseNotConnectedError."""
    client = PostgreSQLClient(database_dsn)
    with pytest.raises(DatabaseNotConnectedError, match="connect"):
        await client.fetch_one("SELECT 1")
    await client.connect()
    assert await client.fetch_value("SELECT 1") == 1
    await client.close()
    with pytest.raises(DatabaseNotConnectedError):
        await client.execute("SELECT 1")
    assert (await client.health_check())["status"] == "unhealthy"


async def test_a_given_pool_is_not_closed_by_the_client(database_dsn: str) -> None:
    """close() lets a given pool go without closing it: the owner closes it."""
    pool = await asyncpg.create_pool(database_dsn, min_size=1, max_size=2)
    try:
        client = PostgreSQLClient(pool=pool)
        await client.connect()
        assert await client.fetch_value("SELECT 2") == 2
        await client.close()
        assert not pool.is_closing()
        assert await pool.fetchval("SELECT 3") == 3
    finally:
        await pool.close()


async def test_fetch_records_returns_the_drivers_records(db: PostgreSQLClient, table: str) -> None:
    """fetch_records binds named parameters and returns asyncpg Records, in order."""
    await db.execute_many(
        f"INSERT INTO {table} (name, score) VALUES (:name, :score)",
        [{"name": "a", "score": 1.0}, {"name": "b", "score": 2.0}, {"name": "c", "score": 3.0}],
    )
    records = await db.fetch_records(
        f"SELECT name, score FROM {table} WHERE score >= :low ORDER BY score", {"low": 2.0}
    )
    assert all(isinstance(record, asyncpg.Record) for record in records)
    assert [tuple(record) for record in records] == [("b", 2.0), ("c", 3.0)]
    assert records[0]["name"] == "b"


async def test_update_refuses_positional_where_parameters(db: PostgreSQLClient, table: str) -> None:
    """$n in update's where clause would mean a SET value: refused, nothing changed."""
    await db.insert(table, {"name": "a", "score": 1.0})
    with pytest.raises(QueryParameterError, match="named parameters"):
        await db.update(table, {"score": 9.0}, "name = $1", ["a"])
    with pytest.raises(QueryParameterError, match="named parameters"):
        await db.update(table, {"score": 9.0}, "score = $1")
    assert await db.fetch_value(f"SELECT score FROM {table}") == 1.0


async def test_fetch_one_with_commit_returns_and_keeps_the_row(
    db: PostgreSQLClient, table: str
) -> None:
    """The original's fetch_one(..., commit=True) for INSERT ... RETURNING stores the row."""
    row = await db.fetch_one(
        f"INSERT INTO {table} (name) VALUES (:name) RETURNING name", {"name": "kept"}, commit=True
    )
    assert row == {"name": "kept"}
    async with db.connection() as other:
        assert await other.fetch_value(f"SELECT count(*) FROM {table}") == 1
