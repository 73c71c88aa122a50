"""The async data layer: one container for Redis, Postgres, Elasticsearch, RabbitMQ and FAISS.

The error types are imported at once (``app.errors`` depends on nothing); the rest lazily
(PEP 562), so that ``settings`` and ``containers`` can import ``app.errors`` and friends
without importing the whole package first.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from app.errors import (
    BackendAlreadyRegisteredError,
    BackendClosedError,
    BackendNotConfiguredError,
    BusClosedError,
    ConcurrencyError,
    ConfigurationError,
    DatabaseConnectionError,
    DatabaseError,
    DatabaseNotConnectedError,
    DataLayerError,
    DeclarationError,
    DimensionMismatchError,
    EmbeddedPostgresError,
    EntitiesNotReadyError,
    EntityError,
    EntityExistsError,
    EntityNotFoundError,
    EventArgumentError,
    EventArgumentTypeError,
    EventBusError,
    EventNotFoundError,
    EventSerializationError,
    EventTooLargeError,
    HandlerTimeoutError,
    HasChildrenError,
    IndexLockedError,
    IntegrityConstraintError,
    InvalidCursorError,
    InvalidEntityError,
    InvalidIdentifierError,
    InvalidListingError,
    InvalidParameterValueError,
    InvalidQueryError,
    InvalidVectorError,
    LifecycleError,
    MalformedEventError,
    MigrationChecksumError,
    MigrationError,
    MigrationFailedError,
    MigrationFileError,
    MissingParentError,
    NotStartedError,
    PublishError,
    QueryError,
    QueryParameterError,
    QuerySyntaxError,
    RabbitMQUnavailableError,
    ReadOnlyIndexError,
    ResourceStartError,
    ResourceStopError,
    SnapshotCorruptError,
    SqlIdentifierError,
    StateArgumentError,
    StateArgumentTypeError,
    StateBackendError,
    StateBackendUnavailableError,
    StatementTimeoutError,
    StreamOverflowError,
    TransactionError,
    UndefinedTableError,
    UniqueViolationError,
    UnitGraphError,
    VectorIndexError,
    VectorStoreUnavailableError,
)

if TYPE_CHECKING:
    from app.events import DataEvent, EventBus, InProcessEventBus, RabbitMQEventBus
    from app.facade import DataLayer
    from app.health import Health
    from app.state import InMemoryStateBackend, RedisStateBackend, StateBackend
    from app.vectors import VectorIndex, VectorMatch, VectorStore
    from settings import ElasticsearchSettings as ElasticsearchConfig
    from settings import FaissSettings as FaissConfig
    from settings import PostgresSettings as PostgresConfig
    from settings import RedisSettings as RedisConfig
    from settings import Settings as DataLayerConfig

# public name -> (module, attribute in that module)
_EXPORTS: dict[str, tuple[str, str]] = {
    "DataLayer": ("app.facade", "DataLayer"),
    "Health": ("app.health", "Health"),
    "DataLayerConfig": ("settings", "Settings"),
    "RedisConfig": ("settings", "RedisSettings"),
    "PostgresConfig": ("settings", "PostgresSettings"),
    "ElasticsearchConfig": ("settings", "ElasticsearchSettings"),
    "FaissConfig": ("settings", "FaissSettings"),
    "DataEvent": ("app.events", "DataEvent"),
    "EventBus": ("app.events", "EventBus"),
    "InProcessEventBus": ("app.events", "InProcessEventBus"),
    "RabbitMQEventBus": ("app.events", "RabbitMQEventBus"),
    "StateBackend": ("app.state", "StateBackend"),
    "InMemoryStateBackend": ("app.state", "InMemoryStateBackend"),
    "RedisStateBackend": ("app.state", "RedisStateBackend"),
    "VectorIndex": ("app.vectors", "VectorIndex"),
    "VectorStore": ("app.vectors", "VectorStore"),
    "VectorMatch": ("app.vectors", "VectorMatch"),
}

__all__ = [
    "BackendAlreadyRegisteredError",
    "BackendClosedError",
    "BackendNotConfiguredError",
    "BusClosedError",
    "ConcurrencyError",
    "ConfigurationError",
    "DataEvent",
    "DataLayer",
    "DataLayerConfig",
    "DataLayerError",
    "DatabaseConnectionError",
    "DatabaseError",
    "DatabaseNotConnectedError",
    "DeclarationError",
    "DimensionMismatchError",
    "ElasticsearchConfig",
    "EmbeddedPostgresError",
    "EntitiesNotReadyError",
    "EntityError",
    "EntityExistsError",
    "EntityNotFoundError",
    "EventArgumentError",
    "EventArgumentTypeError",
    "EventBus",
    "EventBusError",
    "EventNotFoundError",
    "EventSerializationError",
    "EventTooLargeError",
    "FaissConfig",
    "HandlerTimeoutError",
    "HasChildrenError",
    "Health",
    "InMemoryStateBackend",
    "InProcessEventBus",
    "IndexLockedError",
    "IntegrityConstraintError",
    "InvalidCursorError",
    "InvalidEntityError",
    "InvalidIdentifierError",
    "InvalidListingError",
    "InvalidParameterValueError",
    "InvalidQueryError",
    "InvalidVectorError",
    "LifecycleError",
    "MalformedEventError",
    "MigrationChecksumError",
    "MigrationError",
    "MigrationFailedError",
    "MigrationFileError",
    "MissingParentError",
    "NotStartedError",
    "PostgresConfig",
    "PublishError",
    "QueryError",
    "QueryParameterError",
    "QuerySyntaxError",
    "RabbitMQEventBus",
    "RabbitMQUnavailableError",
    "ReadOnlyIndexError",
    "RedisConfig",
    "RedisStateBackend",
    "ResourceStartError",
    "ResourceStopError",
    "SnapshotCorruptError",
    "SqlIdentifierError",
    "StateArgumentError",
    "StateArgumentTypeError",
    "StateBackend",
    "StateBackendError",
    "StateBackendUnavailableError",
    "StatementTimeoutError",
    "StreamOverflowError",
    "TransactionError",
    "UndefinedTableError",
    "UniqueViolationError",
    "UnitGraphError",
    "VectorIndex",
    "VectorIndexError",
    "VectorMatch",
    "VectorStore",
    "VectorStoreUnavailableError",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'app' has no attribute {name!r}")
    module_name, attribute = _EXPORTS[name]
    value = getattr(importlib.import_module(module_name), attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
