"""One settings model per backend; field names and defaults follow the original design."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode

from settings.enums import (
    ApiAuth,
    EmbeddedPostgres,
    LogFormat,
    MigrateMode,
    RateLimitOnError,
    VectorsBackend,
)
from settings.secrets import mask_url, url_component, url_host

__all__ = [
    "ApiSettings",
    "DatabaseSettings",
    "ElasticsearchSettings",
    "EntitiesSettings",
    "EventsSettings",
    "FaissSettings",
    "LogSettings",
    "PostgresSettings",
    "RabbitMQSettings",
    "RedisSettings",
    "StateSettings",
    "VectorsSettings",
]

KiB = 1024
MiB = 1024 * KiB
PositiveSeconds = Annotated[float, Field(gt=0, allow_inf_nan=False)]


def split_list(value: Any) -> Any:
    """Accept a JSON list or a comma-separated string for list settings read from the env."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith("["):
        return json.loads(text)
    return [item.strip() for item in text.split(",") if item.strip()]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RedisSettings(Section):
    """``REDIS__*``: ``url`` wins over host/port/db/password when set."""

    host: str = "localhost"
    port: int = Field(default=6379, gt=0, lt=65536)
    db: int = Field(default=0, ge=0)
    password: SecretStr | None = None
    url: SecretStr | None = None
    max_connections: int = Field(default=50, gt=0)
    socket_timeout_s: PositiveSeconds = 5.0
    connect_timeout_s: PositiveSeconds = 5.0

    def connection_url(self) -> SecretStr:
        """The URL to connect with, password included (keep it wrapped)."""
        if self.url is not None:
            return self.url
        auth = ""
        if self.password is not None:
            auth = f":{url_component(self.password.get_secret_value())}@"
        return SecretStr(f"redis://{auth}{url_host(self.host)}:{self.port}/{self.db}")

    def address(self) -> str:
        """Where Redis is, with any password masked: safe for logs and errors."""
        return mask_url(self.connection_url().get_secret_value())


class PostgresSettings(Section):
    """``POSTGRES__*``: ``dsn`` wins over host/port/database/user/password when set."""

    # Setting any of these, even to its default, names a server: no embedded Postgres in auto.
    server_fields: ClassVar[frozenset[str]] = frozenset({"dsn", "host", "port"})
    host: str = "localhost"
    port: int = Field(default=5432, gt=0, lt=65536)
    database: str = "satellites"
    user: str = "postgres"
    password: SecretStr | None = None
    dsn: SecretStr | None = None
    min_connections: int = Field(default=2, gt=0)
    max_connections: int = Field(default=10, gt=0)
    embedded: EmbeddedPostgres = EmbeddedPostgres.AUTO
    application_name: str = Field(default="datalayer", max_length=63)
    connect_timeout_s: PositiveSeconds = 10.0
    command_timeout_s: PositiveSeconds = 30.0
    # Schema migrations at start (app.database.migrations, then migration_dirs in order).
    migrate: MigrateMode = MigrateMode.AUTO
    migration_dirs: Annotated[list[Path], NoDecode] = Field(default_factory=list)

    _split_migration_dirs = field_validator("migration_dirs", mode="before")(split_list)

    @model_validator(mode="after")
    def _pool_bounds(self) -> PostgresSettings:
        if self.min_connections > self.max_connections:
            msg = (
                f"POSTGRES__MIN_CONNECTIONS ({self.min_connections}) must not exceed "
                f"POSTGRES__MAX_CONNECTIONS ({self.max_connections})"
            )
            raise ValueError(msg)
        return self

    @property
    def server_configured(self) -> bool:
        """True when a DSN, host or port was given explicitly rather than left at its default."""
        return bool(self.server_fields & self.model_fields_set)

    def connection_dsn(self) -> SecretStr:
        """The DSN to connect with, password included (keep it wrapped)."""
        if self.dsn is not None:
            return self.dsn
        auth = url_component(self.user)
        if self.password is not None:
            auth += f":{url_component(self.password.get_secret_value())}"
        server = f"{url_host(self.host)}:{self.port}"
        return SecretStr(f"postgresql://{auth}@{server}/{url_component(self.database)}")

    def address(self) -> str:
        """Where Postgres is, with any password masked."""
        return mask_url(self.connection_dsn().get_secret_value())


class DatabaseSettings(Section):
    """``DATABASE__*``: the database client (``app.database``)."""

    # A name in app.database's backend registry; checked when the client starts.
    backend: str = Field(default="postgres", min_length=1)
    # execute_many sends batches of at least this many plain-insert rows through COPY.
    copy_min_rows: int = Field(default=1000, gt=0)


class ElasticsearchSettings(Section):
    """``ELASTICSEARCH__*``: the client starts only when ``hosts`` is not empty."""

    # Not in repr: a host URL may carry credentials (address() shows them masked).
    hosts: Annotated[list[str], NoDecode] = Field(default_factory=list, repr=False)
    api_key: SecretStr | None = None
    username: str | None = None
    password: SecretStr | None = None
    request_timeout_s: PositiveSeconds = 10.0
    verify_certs: bool = True

    _split_hosts = field_validator("hosts", mode="before")(split_list)

    @model_validator(mode="after")
    def _basic_auth_pair(self) -> ElasticsearchSettings:
        if self.password is not None and self.username is None:
            msg = (
                "ELASTICSEARCH__PASSWORD is set but ELASTICSEARCH__USERNAME is not; "
                "basic auth needs both (or use ELASTICSEARCH__API_KEY)"
            )
            raise ValueError(msg)
        return self

    @property
    def enabled(self) -> bool:
        return bool(self.hosts)

    def address(self) -> str:
        return ",".join(mask_url(host) for host in self.hosts) or "(no hosts)"


class RabbitMQSettings(Section):
    """``RABBITMQ__*``: the connection starts only when ``EVENT_BUS=rabbitmq``."""

    url: SecretStr | None = None
    exchange: str = Field(default="datalayer.events", min_length=1)
    connect_timeout_s: PositiveSeconds = 10.0
    reconnect_interval_s: PositiveSeconds = 5.0
    publish_timeout_s: PositiveSeconds = 5.0

    def address(self) -> str:
        if self.url is None:
            return "(no url)"
        return mask_url(self.url.get_secret_value())


class EventsSettings(Section):
    """``EVENTS__*``: behaviour shared by both event buses."""

    handler_timeout_s: PositiveSeconds = 30.0
    max_event_bytes: int = Field(default=MiB, gt=0)
    close_timeout_s: PositiveSeconds = 10.0
    retry_backoff_s: PositiveSeconds = 0.1


class EntitiesSettings(Section):
    """``ENTITIES__*``: the event-sourced entities' relay and projections."""

    # Off for processes that only look (``check``): they report lag but publish nothing.
    relay_enabled: bool = True
    # Redis pub/sub as a second sink, when Redis runs (DEPLOYMENT_MODE=distributed).
    redis_pubsub: bool = True
    relay_batch_size: int = Field(default=100, gt=0, le=10_000)
    # How often a relay or projection looks for commits of other processes.
    poll_interval_s: PositiveSeconds = 0.5
    relay_max_backoff_s: PositiveSeconds = 5.0
    relay_publish_timeout_s: PositiveSeconds = 30.0
    # How often a standby process tries to take over a relay or projection.
    standby_retry_s: PositiveSeconds = 1.0
    projections_enabled: bool = True
    projection_max_attempts: int = Field(default=3, gt=0, le=100)


class StateSettings(Section):
    """``STATE__*``: the state backend (memory or Redis, per ``DEPLOYMENT_MODE``)."""

    namespace: str = Field(default="datalayer", min_length=1)
    max_value_bytes: int = Field(default=MiB, gt=0)
    sweep_interval_s: PositiveSeconds = 30.0


class FaissSettings(Section):
    """``FAISS__*``: the vector index."""

    index_path: Path = Path("./data/faiss")
    dimension: int = Field(default=1536, gt=0, le=65536)
    save_interval_s: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    threads: int = Field(default=0, ge=0)


class VectorsSettings(Section):
    """``VECTORS__*``: which vector store, and the pgvector store's tuning.

    The dimension of both stores is ``FAISS__DIMENSION``. pgvector: one table per namespace
    in ``schema``; exact search below ``hnsw_min_rows`` rows, an HNSW index from there
    (``hnsw_m``, ``hnsw_ef_construction``; queries with ``ef_search``); filtered queries
    rank at most ``exact_max_rows`` matching rows exactly, more through the index's
    ``filtered_ef_search`` nearest rows (exact again when those hold too few); index builds
    get ``hnsw_build_memory_mb`` of ``maintenance_work_mem``.
    """

    # "schema" would shadow BaseModel.schema: the field is schema_name, set as VECTORS__SCHEMA.
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    backend: VectorsBackend = VectorsBackend.AUTO
    schema_name: str = Field(default="vectors", pattern=r"^[a-z_][a-z0-9_]{0,62}$", alias="schema")
    hnsw_min_rows: int = Field(default=20_000, ge=1)
    hnsw_m: int = Field(default=16, ge=2, le=100)
    hnsw_ef_construction: int = Field(default=64, ge=4, le=1000)
    ef_search: int = Field(default=200, ge=1, le=1000)
    filtered_ef_search: int = Field(default=400, ge=1, le=1000)
    exact_max_rows: int = Field(default=2_000, ge=0)
    hnsw_build_memory_mb: int = Field(default=512, ge=64, le=64 * 1024)


class LogSettings(Section):
    """``LOG__*``: structlog output."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    format: LogFormat = LogFormat.CONSOLE

    @field_validator("level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value


class ApiSettings(Section):
    """``API__*``: the HTTP service."""

    host: str = "127.0.0.1"
    port: int = Field(default=8000, gt=0, lt=65536)
    auth: ApiAuth = ApiAuth.ENABLED
    tokens: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    # Upper bounds: the state backends' (app.state.MAX_LIMIT, MAX_DURATION_SECONDS).
    rate_limit: int = Field(default=600, ge=0, le=2**53 - 1)
    rate_limit_window_seconds: float = Field(
        default=60.0, gt=0, le=2**53 // 1000, allow_inf_nan=False
    )

    # Requests up to this size are read; a bigger body is a 413 before it is buffered.
    max_body_bytes: int = Field(default=64 * MiB, gt=0)
    # The request line and headers together; more is a 431 before they are buffered (only
    # under `python -m app serve`, whose HTTP protocol counts them).
    max_header_bytes: int = Field(default=64 * KiB, ge=KiB)
    # The longest wait for the next piece of a declared request body: then a 408.
    body_read_timeout_s: PositiveSeconds = 30.0
    # When the rate limiter's state backend fails: deny (503 + Retry-After) or allow (logged).
    rate_limit_on_error: RateLimitOnError = RateLimitOnError.DENY

    _split_tokens = field_validator("tokens", mode="before")(split_list)

    @field_validator("tokens")
    @classmethod
    def _presentable_tokens(cls, tokens: list[SecretStr]) -> list[SecretStr]:
        """Only tokens a client can send in a header: visible ASCII, no spaces (the value is
        never echoed). A header is read as Latin-1 and trimmed, so others could never match."""
        for index, token in enumerate(tokens):
            text = token.get_secret_value()
            if not text or not all("!" <= char <= "~" for char in text):
                msg = (
                    f"token #{index + 1} must be visible ASCII characters without spaces "
                    "(what an Authorization header carries)"
                )
                raise ValueError(msg)
        return tokens
