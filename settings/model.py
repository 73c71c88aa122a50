"""The application's settings: environment and ``.env``, nested with ``__``, no prefix."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.errors import ConfigurationError
from settings.data import ConversationsSettings, SessionsSettings
from settings.enums import DeploymentMode, EmbeddedPostgres, EventBusKind, VectorsBackend
from settings.sections import (
    ApiSettings,
    DatabaseSettings,
    ElasticsearchSettings,
    EntitiesSettings,
    EventsSettings,
    FaissSettings,
    LogSettings,
    PostgresSettings,
    RabbitMQSettings,
    RedisSettings,
    StateSettings,
    VectorsSettings,
)

__all__ = ["Settings", "env_name", "load_settings"]

SECRET_WORDS = ("PASSWORD", "TOKEN", "URL", "DSN", "API_KEY", "HOSTS")


class Settings(BaseSettings):
    """Everything the data layer reads from its environment."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        env_nested_delimiter="__",
        case_sensitive=False,
        extra="ignore",
        env_ignore_empty=True,
        frozen=True,
    )

    deployment_mode: DeploymentMode = DeploymentMode.SINGLE_NODE
    event_bus: EventBusKind = EventBusKind.INPROCESS
    data_dir: Path = Path("./data")

    redis: RedisSettings = Field(default_factory=RedisSettings)
    postgres: PostgresSettings = Field(default_factory=PostgresSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    elasticsearch: ElasticsearchSettings = Field(default_factory=ElasticsearchSettings)
    rabbitmq: RabbitMQSettings = Field(default_factory=RabbitMQSettings)
    faiss: FaissSettings = Field(default_factory=FaissSettings)
    vectors: VectorsSettings = Field(default_factory=VectorsSettings)
    log: LogSettings = Field(default_factory=LogSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    state: StateSettings = Field(default_factory=StateSettings)
    events: EventsSettings = Field(default_factory=EventsSettings)
    sessions: SessionsSettings = Field(default_factory=SessionsSettings)
    conversations: ConversationsSettings = Field(default_factory=ConversationsSettings)
    entities: EntitiesSettings = Field(default_factory=EntitiesSettings)

    @model_validator(mode="after")
    def _mode_requirements(self) -> Settings:
        distributed = self.deployment_mode is DeploymentMode.DISTRIBUTED
        if self.event_bus is EventBusKind.RABBITMQ and self.rabbitmq.url is None:
            msg = (
                "EVENT_BUS=rabbitmq needs RABBITMQ__URL "
                "(for example amqp://guest:guest@127.0.0.1:5672/); it is not set"
            )
            raise ValueError(msg)
        if distributed and self.redis.url is None and not self.redis.host:
            msg = "DEPLOYMENT_MODE=distributed needs Redis: set REDIS__URL or REDIS__HOST"
            raise ValueError(msg)
        if self.postgres.embedded is EmbeddedPostgres.TRUE and self.postgres.server_configured:
            msg = (
                "POSTGRES__EMBEDDED=true and a server (POSTGRES__DSN, POSTGRES__HOST or "
                "POSTGRES__PORT) are both set: unset one, or use POSTGRES__EMBEDDED=auto"
            )
            raise ValueError(msg)
        if distributed and self.postgres.embedded is EmbeddedPostgres.TRUE:
            msg = (
                "POSTGRES__EMBEDDED=true is for single_node only; with "
                "DEPLOYMENT_MODE=distributed set POSTGRES__DSN or POSTGRES__HOST instead"
            )
            raise ValueError(msg)
        return self

    @property
    def vector_backend(self) -> VectorsBackend:
        """The vector store in use: ``VECTORS__BACKEND``, with ``auto`` resolved by the mode
        (FAISS keeps vectors in one process; distributed instances must share them)."""
        if self.vectors.backend is VectorsBackend.AUTO:
            if self.deployment_mode is DeploymentMode.DISTRIBUTED:
                return VectorsBackend.PGVECTOR
            return VectorsBackend.FAISS
        return self.vectors.backend

    @property
    def embedded_postgres(self) -> bool:
        """True when Postgres is started in-process under ``DATA_DIR/postgres``."""
        if self.postgres.embedded is EmbeddedPostgres.AUTO:
            single = self.deployment_mode is DeploymentMode.SINGLE_NODE
            return single and not self.postgres.server_configured
        return self.postgres.embedded is EmbeddedPostgres.TRUE


def env_name(location: tuple[int | str, ...]) -> str:
    """The environment variable behind a validation error location (``POSTGRES__PORT``)."""
    parts = [str(part) for part in location if isinstance(part, str)]
    return "__".join(parts).upper() or "settings"


def _did_you_mean(location: tuple[int | str, ...]) -> str:
    """``"; did you mean REDIS__PASSWORD?"``: the section's known key closest to the given one."""
    section = Settings.model_fields.get(str(location[0])) if location else None
    model = section.annotation if section is not None else None
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        return ""
    close = difflib.get_close_matches(str(location[-1]).lower(), list(model.model_fields), n=1)
    return f"; did you mean {env_name((location[0], close[0]))}?" if close else ""


def load_settings(**overrides: Any) -> Settings:
    """Read ``Settings`` from the environment, raising one readable ``ConfigurationError``."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        lines = []
        for error in exc.errors(include_url=False):
            where = env_name(error["loc"])
            message = error["msg"].removeprefix("Value error, ")
            given = error.get("input")
            if error["type"] == "extra_forbidden":
                # A misspelt key may well hold a secret (REDIS__PASS): never echo its value.
                lines.append(f"{where}: not a known setting{_did_you_mean(error['loc'])}")
            elif where == "settings" or isinstance(given, dict):
                lines.append(message)
            elif any(word in where for word in SECRET_WORDS):
                lines.append(f"{where}: {message}")
            else:
                lines.append(f"{where}: {message} (got {given!r})")
        raise ConfigurationError("invalid configuration: " + "; ".join(lines)) from None
