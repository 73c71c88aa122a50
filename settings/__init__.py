"""Typed settings of the data layer, read from the environment and ``.env``."""

from settings.enums import ApiAuth, DeploymentMode, EmbeddedPostgres, EventBusKind, LogFormat
from settings.model import Settings, env_name, load_settings
from settings.secrets import mask_url, mask_urls
from settings.sections import (
    ApiSettings,
    ElasticsearchSettings,
    EntitiesSettings,
    EventsSettings,
    FaissSettings,
    LogSettings,
    PostgresSettings,
    RabbitMQSettings,
    RedisSettings,
    StateSettings,
)

__all__ = [
    "ApiAuth",
    "ApiSettings",
    "DeploymentMode",
    "ElasticsearchSettings",
    "EmbeddedPostgres",
    "EntitiesSettings",
    "EventBusKind",
    "EventsSettings",
    "FaissSettings",
    "LogFormat",
    "LogSettings",
    "PostgresSettings",
    "RabbitMQSettings",
    "RedisSettings",
    "Settings",
    "StateSettings",
    "env_name",
    "load_settings",
    "mask_url",
    "mask_urls",
]
