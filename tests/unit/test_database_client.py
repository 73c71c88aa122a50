"""PostgreSQLClient without a server: arguments checked at once, secrets kept out of errors."""

from __future__ import annotations

import socket

import pytest

from app.database import PostgreSQLClient
from app.errors import ConfigurationError, DatabaseConnectionError


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
