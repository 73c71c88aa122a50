"""Typed settings of the data layer, read from the environment and ``.env``."""

from settings.data import ConversationsSettings, SessionsSettings
from settings.enums import (
    ApiAuth,
    DeploymentMode,
    EmbeddedPostgres,
    EventBusKind,
    LogFormat,
    MigrateMode,
    RateLimitOnError,
    VectorsBackend,
)
from settings.model import Settings, env_name, load_settings
from settings.secrets import mask_url, mask_urls
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

__all__ = [
    "ApiAuth",
    "ApiSettings",
    "ConversationsSettings",
    "DatabaseSettings",
    "DeploymentMode",
    "ElasticsearchSettings",
    "EmbeddedPostgres",
    "EntitiesSettings",
    "EventBusKind",
    "EventsSettings",
    "FaissSettings",
    "LogFormat",
    "LogSettings",
    "MigrateMode",
    "PostgresSettings",
    "RabbitMQSettings",
    "RateLimitOnError",
    "RedisSettings",
    "SessionsSettings",
    "Settings",
    "StateSettings",
    "VectorsBackend",
    "VectorsSettings",
    "env_name",
    "load_settings",
    "mask_url",
    "mask_urls",
]
