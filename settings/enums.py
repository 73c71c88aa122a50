"""Closed sets of the configuration, as ``StrEnum`` so ``Selector`` keys match."""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "ApiAuth",
    "DeploymentMode",
    "EmbeddedPostgres",
    "EventBusKind",
    "LogFormat",
    "MigrateMode",
    "RateLimitOnError",
]


class DeploymentMode(StrEnum):
    """Where shared state lives: in this process, or in Redis for many replicas."""

    SINGLE_NODE = "single_node"
    DISTRIBUTED = "distributed"


class EventBusKind(StrEnum):
    """Which event bus carries ``DataEvent``s."""

    INPROCESS = "inprocess"
    RABBITMQ = "rabbitmq"


class EmbeddedPostgres(StrEnum):
    """Whether to start an embedded Postgres (``auto``: only in single_node without a server)."""

    AUTO = "auto"
    TRUE = "true"
    FALSE = "false"


class LogFormat(StrEnum):
    """How log lines are rendered."""

    CONSOLE = "console"
    JSON = "json"


class ApiAuth(StrEnum):
    """Whether the HTTP API requires a bearer token."""

    ENABLED = "enabled"
    DISABLED = "disabled"



class RateLimitOnError(StrEnum):
    """What the API does when the rate limiter's state backend fails (Redis down)."""

    DENY = "deny"  # refuse with 503 and Retry-After: no request goes unlimited
    ALLOW = "allow"  # let the request through unlimited, logging each one as an error


class MigrateMode(StrEnum):
    """Whether the schema migrations run when the database client starts."""

    AUTO = "auto"
    OFF = "off"
