"""PostgreSQLClient without a server: arguments checked at once, secrets kept out of errors,
driver errors translated."""

from __future__ import annotations

import socket

import asyncpg
import pytest

from app.database import PostgreSQLClient
from app.database.driver_errors import translate
from app.errors import (
    ConfigurationError,
    DatabaseConnectionError,
    DatabaseNotConnectedError,
    IntegrityConstraintError,
    InvalidParameterValueError,
    QueryError,
    StatementTimeoutError,
    UndefinedTableError,
)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_a_failed_connect_never_shows_the_password() -> None:
    """Connecting to a closed port is a DatabaseConnectionError with the password masked."""
    client = PostgreSQLClient(
        f"postgresql+asyncpg://app:s3cret-pw@127.0.0.1:{closed_port()}/db", pool_timeout=2
    )
    with pytest.raises(DatabaseConnectionError, match=r"app:\*\*\*@127\.0\.0\.1") as caught:
        await client.connect()
    assert "s3cret-pw" not in str(caught.value)
    assert not client.is_connected


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"database_url": "postgresql://x/y", "pool": object()},
        {"database_url": "postgresql://x/y", "pool_size": 0},
        {"database_url": "postgresql://x/y", "copy_min_rows": 0},
    ],
)
def test_bad_arguments_are_refused_at_once(kwargs: dict[str, object]) -> None:
    """Exactly one of database_url, pool or settings; positive sizes."""
    with pytest.raises(ConfigurationError):
        PostgreSQLClient(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("driver_error", "expected"),
    [
        (TimeoutError(), StatementTimeoutError),
        (
            asyncpg.QueryCanceledError("canceling statement due to statement timeout"),
            StatementTimeoutError,
        ),
        (ConnectionResetError("reset by peer"), DatabaseConnectionError),
        (asyncpg.ConnectionDoesNotExistError("closed"), DatabaseConnectionError),
        (asyncpg.InterfaceError("pool is closing"), DatabaseNotConnectedError),
        (asyncpg.UndefinedTableError('relation "orders" does not exist'), UndefinedTableError),
        (asyncpg.ForeignKeyViolationError("violates"), IntegrityConstraintError),
        (asyncpg.InsufficientPrivilegeError("permission denied"), QueryError),
    ],
)
def test_driver_errors_map_to_the_tree(driver_error: Exception, expected: type[Exception]) -> None:
    """Each driver error becomes its typed error, naming the operation."""
    error = translate(driver_error, "fetch_all", query="SELECT * FROM orders")
    assert type(error) is expected
    assert str(error).startswith("fetch_all")


def test_a_bad_value_names_the_parameter_not_its_number() -> None:
    """asyncpg's "$2" becomes the :name the caller wrote."""
    error = translate(
        asyncpg.DataError("invalid input for query argument $2: 'x' (an integer is required)"),
        "insert",
        table="users",
        names=("email", "age"),
    )
    assert isinstance(error, InvalidParameterValueError)
    assert "argument :age" in str(error)
    assert error.table == "users"
