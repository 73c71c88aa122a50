"""Settings: env and .env reading, validation messages, secrets, and .env.example in sync."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, SecretStr

from app.errors import ConfigurationError
from app.state import MAX_DURATION_SECONDS, MAX_LIMIT
from settings import (
    DeploymentMode,
    EventBusKind,
    PostgresSettings,
    Settings,
    load_settings,
    mask_url,
)

ROOT = Path(__file__).resolve().parents[2]
SETTING_LINE = re.compile(r"^(#?)([A-Z][A-Z0-9_]*)=(.*)$")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Each test reads only what it sets: no .env from the checkout, no inherited variables."""
    monkeypatch.chdir(tmp_path)
    for name in list(__import__("os").environ):
        if SETTING_LINE.match(f"{name}=") and name.split("__")[0] in {
            "DEPLOYMENT_MODE",
            "EVENT_BUS",
            "DATA_DIR",
            "REDIS",
            "POSTGRES",
            "ELASTICSEARCH",
            "RABBITMQ",
            "FAISS",
            "LOG",
            "API",
            "STATE",
            "EVENTS",
        }:
            monkeypatch.delenv(name)


def leaf_defaults(model: type[BaseModel], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            out |= leaf_defaults(annotation, f"{prefix}{name.upper()}__")
        else:
            out[f"{prefix}{name.upper()}"] = field.get_default(call_default_factory=True)
    return out


def test_defaults_follow_the_original_design() -> None:
    """Field names and defaults match the original configuration."""
    s = load_settings()
    assert s.deployment_mode is DeploymentMode.SINGLE_NODE
    assert s.event_bus is EventBusKind.INPROCESS
    assert (s.redis.host, s.redis.port, s.redis.db, s.redis.password) == (
        "localhost",
        6379,
        0,
        None,
    )
    pg = s.postgres
    assert (pg.host, pg.port, pg.database, pg.user) == ("localhost", 5432, "satellites", "postgres")
    assert (pg.min_connections, pg.max_connections) == (2, 10)
    assert s.faiss.dimension == 1536
    assert str(s.faiss.index_path) == "data/faiss"
    assert s.elasticsearch.hosts == []


def test_nested_env_and_dotenv_are_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Nested sections come from the environment with __, and from a .env file."""
    (tmp_path / ".env").write_text("POSTGRES__DATABASE=fromfile\nREDIS__DB=3\n")
    monkeypatch.setenv("REDIS__DB", "5")
    monkeypatch.setenv("ELASTICSEARCH__HOSTS", "http://a:9200, http://b:9200")
    s = load_settings()
    assert s.postgres.database == "fromfile"
    assert s.redis.db == 5
    assert s.elasticsearch.hosts == ["http://a:9200", "http://b:9200"]


def test_unknown_mode_names_the_variable_and_accepted_values(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An unknown DEPLOYMENT_MODE names the variable, the accepted values and what came."""
    monkeypatch.setenv("DEPLOYMENT_MODE", "cluster")
    with pytest.raises(ConfigurationError) as caught:
        load_settings()
    message = str(caught.value)
    assert "DEPLOYMENT_MODE" in message
    assert "'single_node' or 'distributed'" in message
    assert "'cluster'" in message


def test_rabbitmq_bus_needs_a_url(monkeypatch: pytest.MonkeyPatch) -> None:
    """EVENT_BUS=rabbitmq without RABBITMQ__URL is refused, naming the variable."""
    monkeypatch.setenv("EVENT_BUS", "rabbitmq")
    with pytest.raises(ConfigurationError, match="EVENT_BUS=rabbitmq needs RABBITMQ__URL"):
        load_settings()


def test_distributed_needs_redis(monkeypatch: pytest.MonkeyPatch) -> None:
    """DEPLOYMENT_MODE=distributed without any Redis address is refused."""
    monkeypatch.setenv("DEPLOYMENT_MODE", "distributed")
    monkeypatch.setenv("REDIS__HOST", "")
    assert load_settings().redis.host == "localhost"  # empty means unset: the default applies
    with pytest.raises(ConfigurationError, match="needs Redis"):
        load_settings(redis={"host": ""})
    assert load_settings(redis={"host": "", "url": "redis://r:6379/0"}).redis.address() == (
        "redis://r:6379/0"
    )


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            {"POSTGRES__MAX_CONNECTIONS": "0"},
            "POSTGRES__MAX_CONNECTIONS: Input should be greater than 0",
        ),
        (
            {"POSTGRES__MIN_CONNECTIONS": "-1"},
            "POSTGRES__MIN_CONNECTIONS: Input should be greater than 0",
        ),
        (
            {"POSTGRES__MIN_CONNECTIONS": "11"},
            "POSTGRES__MIN_CONNECTIONS (11) must not exceed POSTGRES__MAX_CONNECTIONS (10)",
        ),
        ({"REDIS__MAX_CONNECTIONS": "0"}, "REDIS__MAX_CONNECTIONS"),
        ({"REDIS__PORT": "http"}, "REDIS__PORT"),
    ],
)
def test_pool_sizes_are_validated(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: str
) -> None:
    """Non-positive pool sizes and min > max are refused with the variable named."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError) as caught:
        load_settings()
    assert expected in str(caught.value)


def test_embedded_postgres_only_without_a_server(monkeypatch: pytest.MonkeyPatch) -> None:
    """single_node embeds Postgres unless a host/port/DSN is given; distributed never does."""
    assert load_settings().embedded_postgres
    monkeypatch.setenv("POSTGRES__HOST", "127.0.0.1")
    assert not load_settings().embedded_postgres
    monkeypatch.delenv("POSTGRES__HOST")
    monkeypatch.setenv("DEPLOYMENT_MODE", "distributed")
    assert not load_settings().embedded_postgres
    monkeypatch.setenv("POSTGRES__EMBEDDED", "true")
    with pytest.raises(ConfigurationError, match="POSTGRES__EMBEDDED=true is for single_node"):
        load_settings()


def test_secrets_never_show(monkeypatch: pytest.MonkeyPatch) -> None:
    """Passwords stay SecretStr and are masked in addresses, reprs and error messages."""
    monkeypatch.setenv("POSTGRES__PASSWORD", "hunter2")
    monkeypatch.setenv("RABBITMQ__URL", "amqp://guest:hunter2@127.0.0.1:5672/")
    monkeypatch.setenv("REDIS__URL", "redis://:hunter2@127.0.0.1:6379/0")
    s = load_settings()
    assert isinstance(s.postgres.password, SecretStr)
    for text in (repr(s), str(s), s.postgres.address(), s.rabbitmq.address(), s.redis.address()):
        assert "hunter2" not in text
    assert s.rabbitmq.address() == "amqp://guest:***@127.0.0.1:5672/"
    monkeypatch.setenv("POSTGRES__MAX_CONNECTIONS", "0")
    monkeypatch.setenv("RABBITMQ__URL", "hunter2" * 3)
    monkeypatch.setenv("ELASTICSEARCH__PASSWORD", "x" * 5)
    monkeypatch.setenv("API__TOKENS", "[1, 2")
    with pytest.raises(ConfigurationError) as caught:
        load_settings()
    assert "POSTGRES__MAX_CONNECTIONS" in str(caught.value)
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize(
    ("name", "value", "suggestion"),
    [
        ("REDIS__PASS", "hunter2", "REDIS__PASSWORD"),
        ("ELASTICSEARCH__APIKEY", "hunter2==", "ELASTICSEARCH__API_KEY"),
        ("RABBITMQ__URI", "amqp://guest:hunter2@127.0.0.1:5672/", "RABBITMQ__URL"),
    ],
)
def test_misspelt_setting_is_named_without_its_value(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, suggestion: str
) -> None:
    """An unknown key in a section names the variable and the closest known one, never the value."""
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError) as caught:
        load_settings()
    message = str(caught.value)
    assert "hunter2" not in message
    assert f"{name}: not a known setting; did you mean {suggestion}?" in message


def test_unknown_setting_without_a_close_name_gets_no_suggestion(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A key nothing resembles is reported as unknown, with no guess and no value."""
    monkeypatch.setenv("FAISS__ZZZ", "hunter2")
    with pytest.raises(ConfigurationError) as caught:
        load_settings()
    assert str(caught.value) == "invalid configuration: FAISS__ZZZ: not a known setting"


def test_mask_url_handles_odd_input() -> None:
    """mask_url keeps URLs without password and masks any password, also with IPv6 hosts."""
    assert mask_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
    assert mask_url("amqp://u:p@[::1]:5672/v") == "amqp://u:***@[::1]:5672/v"
    assert mask_url("http://u:p@host:notaport/") == "***"


def test_env_example_matches_settings(tmp_path: Path) -> None:
    """.env.example lists every setting once, with a comment, and loading it gives the defaults.

    Settings without a default are commented with no value; those whose mere presence changes
    behaviour (POSTGRES__HOST/PORT) are commented with their default; the rest are set.
    """
    documented: dict[str, tuple[bool, str]] = {}
    lines = (ROOT / ".env.example").read_text().splitlines()
    for index, line in enumerate(lines):
        match = SETTING_LINE.match(line)
        if match is None:
            continue
        commented, name, value = match.groups()
        assert name not in documented, f"{name} is documented twice"
        assert lines[index - 1].startswith("# "), f"{name} has no comment above it"
        documented[name] = (bool(commented), value)
    defaults = leaf_defaults(Settings)
    assert set(documented) == set(defaults)
    server = {f"POSTGRES__{field.upper()}" for field in PostgresSettings.server_fields}
    for name, default in defaults.items():
        commented, value = documented[name]
        if default is None:
            assert (commented, value) == (True, ""), f"#{name}= has no default: no value"
        elif name in server:
            assert commented, f"#{name}: setting it turns the embedded Postgres off"
            assert value, f"#{name} shows its default"
        else:
            assert not commented, f"{name} has a default: set it uncommented"
    shown = {name: value for name, (commented, value) in documented.items() if commented and value}
    (tmp_path / ".env").write_text("".join(f"{name}={value}\n" for name, value in shown.items()))
    uncommented = load_settings()
    for name in shown:
        section, field = name.lower().split("__")
        assert getattr(getattr(uncommented, section), field) == defaults[name], name
    (tmp_path / ".env").write_text((ROOT / ".env.example").read_text())
    from_example = load_settings().model_dump()
    (tmp_path / ".env").unlink()
    assert from_example == load_settings().model_dump()


def test_a_copy_of_env_example_embeds_postgres(tmp_path: Path) -> None:
    """.env.example copied as-is keeps single_node on the embedded Postgres (no server set)."""
    env_file = tmp_path / "copied.env"
    env_file.write_text((ROOT / ".env.example").read_text())
    s = Settings(_env_file=env_file)
    assert s.deployment_mode is DeploymentMode.SINGLE_NODE
    assert not s.postgres.server_configured
    assert s.embedded_postgres


def test_readme_documents_every_setting() -> None:
    """The README's configuration table names every setting."""
    readme = (ROOT / "README.md").read_text()
    missing = [name for name in leaf_defaults(Settings) if f"`{name}`" not in readme]
    assert missing == []


def test_elasticsearch_hosts_with_credentials_stay_out_of_repr() -> None:
    """Elasticsearch host URLs, which may carry credentials, never show in the settings' repr."""
    settings = load_settings(elasticsearch={"hosts": ["https://elastic:hunter2@es:9200"]})
    assert "hunter2" not in repr(settings)
    assert "hunter2" not in str(settings)
    assert settings.elasticsearch.address() == "https://elastic:***@es:9200"


def test_elasticsearch_password_without_username_is_refused() -> None:
    """ELASTICSEARCH__PASSWORD without a username is a configuration error, not ignored."""
    with pytest.raises(ConfigurationError, match="ELASTICSEARCH__USERNAME is not") as caught:
        load_settings(elasticsearch={"hosts": ["http://es:9200"], "password": "hunter2"})
    assert "hunter2" not in str(caught.value)


def test_rate_limit_settings_stay_within_what_the_state_backends_accept() -> None:
    """API__RATE_LIMIT and its window are refused at start above the state backends' caps."""
    top = load_settings(
        api={"rate_limit": MAX_LIMIT, "rate_limit_window_seconds": MAX_DURATION_SECONDS}
    )
    assert (top.api.rate_limit, top.api.rate_limit_window_seconds) == (
        MAX_LIMIT,
        MAX_DURATION_SECONDS,
    )
    with pytest.raises(ConfigurationError, match="API__RATE_LIMIT"):
        load_settings(api={"rate_limit": MAX_LIMIT + 1})
    with pytest.raises(ConfigurationError, match="API__RATE_LIMIT_WINDOW_SECONDS"):
        load_settings(api={"rate_limit_window_seconds": MAX_DURATION_SECONDS * 2})


@pytest.mark.parametrize(
    "tokens", ["ok,tökén", '[" padded "]', '["two words"]', '[""]', "ok,tab\tinside"]
)
def test_tokens_a_header_cannot_carry_are_refused_without_their_value(
    monkeypatch: pytest.MonkeyPatch, tokens: str
) -> None:
    """A token that is not visible ASCII could never authenticate (headers are Latin-1 and
    trimmed): refused at start, naming its position, never its value."""
    monkeypatch.setenv("API__TOKENS", tokens)
    with pytest.raises(ConfigurationError, match=r"API__TOKENS: token #\d") as caught:
        load_settings()
    for secret in ("tökén", "padded", "two words", "inside"):
        assert secret not in str(caught.value)


def test_visible_ascii_tokens_are_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tokens of visible ASCII (what token68 and API keys use) load as given."""
    monkeypatch.setenv("API__TOKENS", "abc-123_XYZ.~+/=,second!")
    tokens = [token.get_secret_value() for token in load_settings().api.tokens]
    assert tokens == ["abc-123_XYZ.~+/=", "second!"]


def test_an_embedded_postgres_beside_a_configured_server_is_refused() -> None:
    """POSTGRES__EMBEDDED=true with a DSN set used to ignore the DSN silently: now refused."""
    with pytest.raises(ConfigurationError, match="POSTGRES__EMBEDDED=true and a server") as caught:
        load_settings(postgres={"embedded": "true", "dsn": "postgresql://u:hunter2@db/app"})
    assert "hunter2" not in str(caught.value)
    assert load_settings(postgres={"embedded": "true"}).embedded_postgres
