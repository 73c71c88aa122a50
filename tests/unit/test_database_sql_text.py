"""The named-parameter compiler, the statement splitter, identifiers and the COPY plan."""

from __future__ import annotations

import pytest

from app.database import compile_query, split_statements
from app.database.identifiers import quote_identifier, quote_table
from app.database.runner import CopyPlan, copy_plan
from app.errors import QueryParameterError, QuerySyntaxError, SqlIdentifierError


@pytest.mark.parametrize(
    ("query", "sql", "names"),
    [
        ("SELECT * FROM t WHERE a = :a", "SELECT * FROM t WHERE a = $1", ("a",)),
        ("SELECT :a, :b, :a", "SELECT $1, $2, $1", ("a", "b")),
        ("SELECT :a::int, x::text", "SELECT $1::int, x::text", ("a",)),
        ("SELECT ':a', 'it''s :b'", "SELECT ':a', 'it''s :b'", ()),
        ("SELECT E'\\':a', :b", "SELECT E'\\':a', $1", ("b",)),
        ("SELECT e'\\\\', :b", "SELECT e'\\\\', $1", ("b",)),
        ("SELECT 'x\\', :b", "SELECT 'x\\', $1", ("b",)),  # standard string: \ is literal
        ('SELECT "a:b", "x""y:z", :c', 'SELECT "a:b", "x""y:z", $1', ("c",)),
        ("SELECT 1 -- :a\n, :b", "SELECT 1 -- :a\n, $1", ("b",)),
        ("SELECT /* :a /* :b */ :c */ :d", "SELECT /* :a /* :b */ :c */ $1", ("d",)),
        ("SELECT $$ :a $$, :b", "SELECT $$ :a $$, $1", ("b",)),
        ("SELECT $f$ $$ :a $f$, :b", "SELECT $f$ $$ :a $f$, $1", ("b",)),
        ("SELECT a[lo:hi], a[1:2]", "SELECT a[lo:hi], a[1:2]", ()),
        ("SELECT \\:a, :b", "SELECT :a, $1", ("b",)),
        ("SELECT f(x := :v)", "SELECT f(x := $1)", ("v",)),
        ("SELECT $1, $2", "SELECT $1, $2", ()),
        ("SELECT a$b, :c", "SELECT a$b, $1", ("c",)),
        ("SELECT 1", "SELECT 1", ()),
    ],
)
def test_named_parameters_compile(query: str, sql: str, names: tuple[str, ...]) -> None:
    """:name becomes $n outside literals, quoted names, comments and dollar bodies."""
    compiled = compile_query(query)
    assert (compiled.sql, compiled.names) == (sql, names)


def test_compiling_is_cached_per_query_text() -> None:
    """The same text compiles once: the second call returns the same object."""
    query = "SELECT :cached_name"
    assert compile_query(query) is compile_query(query)


def test_numbering_can_start_later() -> None:
    """A where clause appended after n values numbers its parameters from n + 1."""
    assert compile_query("id = :id AND b = :b", 3).sql == "id = $3 AND b = $4"


@pytest.mark.parametrize(
    "query", ["SELECT 'open", 'SELECT "open', "SELECT /* open", "SELECT $x$ open", "SELECT E'\\'"]
)
def test_unterminated_text_is_a_syntax_error(query: str) -> None:
    """An unterminated literal, name, comment or body is refused with its position."""
    with pytest.raises(QuerySyntaxError, match=r"unterminated .* at line 1"):
        compile_query(query + " :a")


def test_mixing_named_and_positional_is_refused() -> None:
    """One query uses :name or $n, not both."""
    with pytest.raises(QueryParameterError, match="mixes"):
        compile_query("SELECT $1, :a")


def test_binding_checks_names_and_kinds() -> None:
    """Missing and extra names are reported; a sequence binds only $n queries."""
    named = compile_query("SELECT :a, :b")
    assert named.bind({"b": 2, "a": 1}) == [1, 2]
    with pytest.raises(QueryParameterError) as caught:
        named.bind({"a": 1, "z": 0})
    assert (caught.value.missing, caught.value.extra) == (("b",), ("z",))
    with pytest.raises(QueryParameterError, match="missing"):
        named.bind(None)
    with pytest.raises(QueryParameterError, match="pass a mapping"):
        named.bind([1, 2])
    assert compile_query("SELECT $1").bind((5,)) == (5,)
    with pytest.raises(QueryParameterError, match="must be a mapping"):
        compile_query("SELECT 1").bind("ab")


def test_scripts_split_at_code_semicolons() -> None:
    """; inside literals, comments and bodies does not end a statement; empty ones are dropped."""
    script = "CREATE TABLE a (x text DEFAULT ';');\n-- just a comment;\n;\n" + (
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1; $$; /* ; */"
    )
    assert split_statements(script) == [
        "CREATE TABLE a (x text DEFAULT ';')",
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1; $$",
    ]


@pytest.mark.parametrize(
    ("name", "quoted"),
    [("users", '"users"'), ("Users", '"users"'), ("app.users", '"app"."users"'), ("_x1", '"_x1"')],
)
def test_plain_table_names_are_quoted(name: str, quoted: str) -> None:
    """Plain names are folded to lower case (as Postgres reads them unquoted) and quoted."""
    assert quote_table(name) == quoted


@pytest.mark.parametrize("name", ["", "1a", "a-b", 'a"b', "a b", "a;b", "x" * 64, "a.b.c", "é"])
def test_other_names_are_refused(name: str) -> None:
    """Anything but a plain identifier (optionally schema-qualified) is a SqlIdentifierError."""
    with pytest.raises(SqlIdentifierError):
        quote_table(name)
    if "." not in name:
        with pytest.raises(SqlIdentifierError):
            quote_identifier(name)


@pytest.mark.parametrize(
    ("query", "plan"),
    [
        ("INSERT INTO t (a, b) VALUES (:a, :b)", CopyPlan(None, "t", ("a", "b"))),
        ('insert into S."T" ("Ab", c) values (:x, :y);', CopyPlan("s", "T", ("Ab", "c"))),
        ("INSERT INTO t (a, b) VALUES (:a, now())", None),
        ("INSERT INTO t (a, b) VALUES (:a, :a)", None),
        ("INSERT INTO t (a) VALUES (:a) ON CONFLICT DO NOTHING", None),
        ("INSERT INTO t (a) VALUES (:a) RETURNING id", None),
        ("INSERT INTO t (a) VALUES (:a::int)", None),
        ("UPDATE t SET a = :a", None),
    ],
)
def test_only_plain_inserts_go_through_copy(query: str, plan: CopyPlan | None) -> None:
    """COPY is planned only for an INSERT of bare parameters into named columns."""
    assert copy_plan(query) == plan


@pytest.mark.parametrize("query", ["SELECT :a", "SELECT :a, :b, :a"])
def test_binding_many_sets_agrees_with_binding_each(query: str) -> None:
    """bind_many's fast path gives what bind gives per set, and the same errors."""
    compiled = compile_query(query)
    sets = [{"a": i, "b": -i} if "b" in compiled.names else {"a": i} for i in range(5)]
    assert [list(row) for row in compiled.bind_many(sets)] == [compiled.bind(p) for p in sets]
    bad = [*sets, {"z": 1} if len(compiled.names) == 1 else {"a": 1, "z": 2}]
    with pytest.raises(QueryParameterError, match=r"missing parameter\(s\) :(a|b)"):
        compiled.bind_many(bad)
    with pytest.raises(QueryParameterError, match=r"extra parameter\(s\) :z"):
        compiled.bind_many([*sets, {**sets[0], "z": 0}])


@pytest.mark.parametrize(
    ("query", "positional"),
    [("SELECT $1", True), ("SELECT '$1', $$ $2 $$", False), ("SELECT :a", False), ("x$1", False)],
)
def test_positional_parameters_are_noticed_in_code_only(query: str, positional: bool) -> None:
    """$n counts as a parameter in code, not in literals, bodies or identifiers."""
    assert compile_query(query).positional is positional


def test_binding_many_reads_a_generator_once() -> None:
    """A generator of parameter sets is bound whole, not read up by the checks."""
    compiled = compile_query("SELECT :a, :b")
    rows = compiled.bind_many({"a": i, "b": i} for i in range(3))  # type: ignore[arg-type]
    assert [list(row) for row in rows] == [[0, 0], [1, 1], [2, 2]]
