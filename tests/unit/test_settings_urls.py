"""Settings URLs: built from fields with encoded credentials, masked wherever they are shown."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

import pytest

# asyncpg parses a DSN here, privately; the test checks our URLs the way asyncpg reads them.
from asyncpg.connect_utils import _parse_connect_dsn_and_args  # type: ignore[attr-defined]
from pydantic import SecretStr
from redis.asyncio import ConnectionPool
from redis.asyncio.connection import parse_url

from app.logging import redact_secrets
from settings import PostgresSettings, RabbitMQSettings, RedisSettings, mask_url

# Every URL delimiter, a percent escape, and words that must never show up in an address.
WORDY = "alpha@bravo#charlie/delta?%41echo:foxtrot[golf]hotel"
SECRETS = ["p@ss#w/rd?%41", WORDY]


def assert_hidden(text: str, secret: str) -> None:
    """Neither the secret, nor its encoded form, nor any word of it appears in ``text``."""
    assert secret not in text
    assert quote(secret, safe="") not in text
    for word in re.split(r"[^A-Za-z]+", secret):
        if len(word) >= 4:
            assert word not in text


def asyncpg_parse(dsn: str) -> tuple[list[tuple[str, int]], Any]:
    """The addresses and parameters asyncpg itself reads from ``dsn``."""
    addrs, params = _parse_connect_dsn_and_args(
        dsn=dsn,
        host=None,
        port=None,
        user=None,
        password=None,
        passfile=None,
        database=None,
        ssl="disable",
        service=None,
        servicefile=None,
        direct_tls=None,
        server_settings=None,
        target_session_attrs=None,
        krbsrvname=None,
        gsslib=None,
    )
    return addrs, params


@pytest.fixture(autouse=True)
def no_libpq_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """asyncpg's parser reads PG* variables; the tests see only what the DSN says."""
    for name in ("PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGDATABASE", "PGSERVICE"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("secret", SECRETS)
def test_redis_url_from_fields_round_trips_through_redis_py(secret: str) -> None:
    """A password with URL delimiters reaches redis-py intact, with the right host and db."""
    redis = RedisSettings(host="cache.internal", port=6380, db=2, password=SecretStr(secret))
    url = redis.connection_url().get_secret_value()
    assert parse_url(url) == {"host": "cache.internal", "port": 6380, "db": 2, "password": secret}
    kwargs = ConnectionPool.from_url(url).connection_kwargs
    assert (kwargs["host"], kwargs["port"], kwargs["db"], kwargs["password"]) == (
        "cache.internal",
        6380,
        2,
        secret,
    )
    assert redis.address() == "redis://:***@cache.internal:6380/2"
    assert_hidden(redis.address(), secret)


@pytest.mark.parametrize("secret", SECRETS)
def test_postgres_dsn_from_fields_round_trips_through_asyncpg(secret: str) -> None:
    """User, password and database with URL delimiters reach asyncpg intact, host unchanged."""
    postgres = PostgresSettings(
        host="db.internal",
        port=6543,
        database="sat/db?#1",
        user="ops@corp:x/y",
        password=SecretStr(secret),
    )
    addrs, params = asyncpg_parse(postgres.connection_dsn().get_secret_value())
    assert addrs == [("db.internal", 6543)]
    assert (params.user, params.password, params.database) == ("ops@corp:x/y", secret, "sat/db?#1")
    assert postgres.address() == (
        "postgresql://ops%40corp%3Ax%2Fy:***@db.internal:6543/sat%2Fdb%3F%231"
    )
    assert_hidden(postgres.address(), secret)


def test_ipv6_hosts_are_bracketed_in_built_urls() -> None:
    """An IPv6 host in REDIS__HOST/POSTGRES__HOST gives a URL the clients parse to that host."""
    url = RedisSettings(host="::1").connection_url().get_secret_value()
    assert (parse_url(url)["host"], parse_url(url)["port"]) == ("::1", 6379)
    addrs, _ = asyncpg_parse(PostgresSettings(host="::1").connection_dsn().get_secret_value())
    assert addrs == [("::1", 5432)]


@pytest.mark.parametrize("secret", SECRETS)
@pytest.mark.parametrize("encode", [True, False], ids=["encoded", "raw"])
def test_addresses_of_given_urls_never_show_the_password(secret: str, encode: bool) -> None:
    """REDIS__URL, POSTGRES__DSN and RABBITMQ__URL are masked, even when not percent-encoded."""
    password = quote(secret, safe="") if encode else secret
    addresses = [
        RedisSettings(url=SecretStr(f"redis://:{password}@cache:6379/0")).address(),
        PostgresSettings(dsn=SecretStr(f"postgresql://u:{password}@db:5432/app")).address(),
        RabbitMQSettings(url=SecretStr(f"amqp://guest:{password}@mq:5672/")).address(),
    ]
    for address in addresses:
        assert_hidden(address, secret)
    if encode:
        assert addresses == [
            "redis://:***@cache:6379/0",
            "postgresql://u:***@db:5432/app",
            "amqp://guest:***@mq:5672/",
        ]


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("postgresql://u@h/db?password=hunter2", "postgresql://u@h/db?password=***"),
        (
            "postgresql://u@h/db?sslmode=require&SSLPassword=hunter2&application_name=x",
            "postgresql://u@h/db?sslmode=require&SSLPassword=***&application_name=x",
        ),
        ("postgres://u:hunter2@h/db?PASSWORD=hunter2", "postgres://u:***@h/db?PASSWORD=***"),
        ("postgresql://h/db?pass%77ord=hunter2", "postgresql://h/db?pass%77ord=***"),
        ("redis://h:6379/0?password=hunter2&db=1", "redis://h:6379/0?password=***&db=1"),
    ],
)
def test_mask_url_masks_password_query_parameters(url: str, masked: str) -> None:
    """``password``/``sslpassword`` query parameters (any case) are masked like the userinfo."""
    assert mask_url(url) == masked


def test_addresses_mask_password_query_parameters() -> None:
    """A DSN or URL carrying its password in the query shows it masked in address()."""
    dsn = "postgresql://u@db:5432/app?password=hunter2&sslpassword=hunter3"
    assert PostgresSettings(dsn=SecretStr(dsn)).address() == (
        "postgresql://u@db:5432/app?password=***&sslpassword=***"
    )
    url = "redis://cache:6379/0?password=hunter2"
    assert RedisSettings(url=SecretStr(url)).address() == "redis://cache:6379/0?password=***"


@pytest.mark.parametrize(
    "url",
    [
        "redis://127.0.0.1:6379/0",
        "postgresql://u@h:5432/db?sslmode=require&application_name=x",
        "https://docs.example.org/page#section",
        "http://[::1]:9200",
    ],
)
def test_mask_url_keeps_urls_without_secrets(url: str) -> None:
    """URLs with nothing secret in them come back unchanged."""
    assert mask_url(url) == url


@pytest.mark.parametrize("secret", SECRETS)
def test_log_redaction_masks_every_url_secret(secret: str) -> None:
    """The logging processor masks userinfo passwords (encoded or not) and password parameters."""
    event = {
        "event": f"connecting to postgresql://u@db/app?password={quote(secret)} now",
        "address": f"redis://:{secret}@cache:6379/0",
        "cause": f"refused: amqp://guest:{quote(secret, safe='')}@mq:5672/ (retrying)",
        "plain": "see https://docs.example.org/page#section",
    }
    redacted = redact_secrets(None, "info", dict(event))
    for key in ("event", "address", "cause"):
        assert_hidden(redacted[key], secret)
    assert redacted["event"] == "connecting to postgresql://u@db/app?password=*** now"
    assert redacted["cause"] == "refused: amqp://guest:***@mq:5672/ (retrying)"
    assert redacted["plain"] == event["plain"]
