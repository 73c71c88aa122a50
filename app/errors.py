"""The error types of the data layer.

Every error the package raises on purpose derives from :class:`DataLayerError`.
Where the meaning matches a built-in, the error inherits it too, so callers may
catch either (``except ValueError`` still catches a ``DimensionMismatchError``)::

    DataLayerError
    ├── ConfigurationError (ValueError)          bad or contradictory settings
    ├── LifecycleError
    │   ├── DeclarationError (ValueError)        a Managed declaration names no startable provider
    │   ├── UnitGraphError (ValueError)          unit dependencies unknown or in a cycle
    │   ├── ResourceStartError                   a backend failed to start; the rest was rolled back
    │   ├── ResourceStopError (ExceptionGroup)   one or more backends failed to stop
    │   ├── NotStartedError (RuntimeError)       used before start()
    │   └── EmbeddedPostgresError                the embedded Postgres did not start or stop cleanly
    ├── BackendNotConfiguredError (LookupError)  the configured mode does not start this backend
    ├── BackendClosedError (RuntimeError)        a call after close()
    ├── RabbitMQUnavailableError (ConnectionError)   the broker connection is closed or down
    ├── StateBackendError                        a stored value this data layer did not write
    │   ├── StateArgumentError (ValueError)      an argument out of range or of the wrong form
    │   ├── StateArgumentTypeError (TypeError)   an argument (or the value under a key) mistyped
    │   └── StateBackendUnavailableError (ConnectionError)   Redis did not answer
    ├── EventBusError
    │   ├── EventArgumentError (ValueError)      an argument out of range or of the wrong form
    │   ├── EventArgumentTypeError (TypeError)   an argument of the wrong type
    │   ├── EventSerializationError (TypeError)  payload is not JSON-serialisable
    │   ├── EventTooLargeError (ValueError)      encoded event over max_event_bytes
    │   ├── BusClosedError (RuntimeError)        publish after close()
    │   ├── PublishError (ConnectionError)       the broker did not confirm in time
    │   ├── HandlerTimeoutError (TimeoutError)   a handler ran past handler_timeout_s
    │   ├── MalformedEventError (ValueError)     a message is not our event envelope
    │   └── StreamOverflowError (RuntimeError)   an event stream's reader fell too far behind
    ├── VectorIndexError
    │   ├── DimensionMismatchError (ValueError)  vector of the wrong length
    │   ├── InvalidVectorError (ValueError)      NaN, inf or zero vector
    │   ├── InvalidIdentifierError (ValueError)  bad namespace, id or metadata
    │   ├── InvalidQueryError (ValueError)       bad top_k or metadata filter
    │   ├── SnapshotCorruptError                 a snapshot failed verification on load
    │   ├── IndexLockedError                     another process writes this index directory
    │   ├── ReadOnlyIndexError (RuntimeError)    a write on an index opened read_only=True
    │   └── VectorStoreUnavailableError (RuntimeError)  Postgres cannot serve the vector store
    │                                            (no pgvector, a dimension it cannot index)
    ├── EntityError
    │   ├── EntityNotFoundError (LookupError)    no such entity (or it was deleted)
    │   ├── EntityExistsError                    a create names an id that is taken
    │   ├── InvalidEntityError (ValueError)      fields that do not fit the entity's model
    │   ├── ConcurrencyError                     the entity moved past the version named
    │   ├── MissingParentError (ValueError)      a parent reference names no live entity
    │   ├── HasChildrenError                     a parent with live children cannot be deleted
    │   ├── InvalidListingError (ValueError)     listing bounds or filters that do not fit
    │   │   └── InvalidCursorError               a cursor this layer did not make (or not for this)
    │   ├── EventNotFoundError (LookupError)     no event with that id
    │   └── EntitiesNotReadyError                a relay cannot publish / a projection fails
    └── DatabaseError
        ├── DatabaseConnectionError (ConnectionError)   Postgres unreachable or the connection lost
        ├── DatabaseNotConnectedError (RuntimeError)    a query before connect() or after close()
        ├── QueryParameterError (ValueError)            a named parameter missing or extra
        ├── SqlIdentifierError (ValueError)             a table or column name that is not plain
        ├── TransactionError (RuntimeError)             misuse of a transaction (VACUUM inside one)
        ├── BackendAlreadyRegisteredError (ValueError)  register_backend on a taken name
        ├── QueryError                                  Postgres refused a statement
        │   ├── QuerySyntaxError (ValueError)           a syntax or name error in the SQL
        │   ├── UndefinedTableError (LookupError)       the table does not exist
        │   ├── InvalidParameterValueError (ValueError) a parameter value of the wrong type
        │   ├── IntegrityConstraintError (ValueError)   a constraint refused the row
        │   │   └── UniqueViolationError                a unique key is taken
        │   └── StatementTimeoutError (TimeoutError)    cancelled by a statement or command timeout
        └── MigrationError
            ├── MigrationFileError (ValueError)         a migration file's name or content is bad
            ├── MigrationChecksumError                  an applied file was changed afterwards
            └── MigrationFailedError                    a migration's SQL failed; rolled back

The argument errors (``StateArgumentError``, ``EventArgumentError`` and their ``TypeError``
twins, and the vector index's ``ValueError`` branch) are the caller's fault: the web layer
answers them with 422. Every other error is the server's, and a 500 or 503.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Self

__all__ = [
    "BackendAlreadyRegisteredError",
    "BackendClosedError",
    "BackendNotConfiguredError",
    "BusClosedError",
    "ConcurrencyError",
    "ConfigurationError",
    "DataLayerError",
    "DatabaseConnectionError",
    "DatabaseError",
    "DatabaseNotConnectedError",
    "DeclarationError",
    "DimensionMismatchError",
    "EmbeddedPostgresError",
    "EntitiesNotReadyError",
    "EntityError",
    "EntityExistsError",
    "EntityNotFoundError",
    "EventArgumentError",
    "EventArgumentTypeError",
    "EventBusError",
    "EventNotFoundError",
    "EventSerializationError",
    "EventTooLargeError",
    "HandlerTimeoutError",
    "HasChildrenError",
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
    "PublishError",
    "QueryError",
    "QueryParameterError",
    "QuerySyntaxError",
    "RabbitMQUnavailableError",
    "ReadOnlyIndexError",
    "ResourceStartError",
    "ResourceStopError",
    "SnapshotCorruptError",
    "SqlIdentifierError",
    "StateArgumentError",
    "StateArgumentTypeError",
    "StateBackendError",
    "StateBackendUnavailableError",
    "StatementTimeoutError",
    "StreamOverflowError",
    "TransactionError",
    "UndefinedTableError",
    "UniqueViolationError",
    "UnitGraphError",
    "VectorIndexError",
    "VectorStoreUnavailableError",
]


class DataLayerError(Exception):
    """Root of every error raised on purpose by the data layer."""


class ConfigurationError(DataLayerError, ValueError):
    """The settings are invalid or contradict each other."""


class LifecycleError(DataLayerError):
    """Starting or stopping the backends went wrong."""


class DeclarationError(LifecycleError, ValueError):
    """A ``Managed`` declaration names a provider its container does not have, or one the
    lifecycle cannot start; raised before anything starts."""


class UnitGraphError(LifecycleError, ValueError):
    """Lifecycle units depend on a unit that is not there, or on each other in a cycle."""


class ResourceStartError(LifecycleError):
    """A backend failed to start; everything started before it was stopped again."""

    def __init__(self, resource: str, address: str, cause: BaseException) -> None:
        self.resource = resource
        self.address = address
        self.cause = cause
        detail = str(cause) or type(cause).__name__
        super().__init__(
            f"{resource} failed to start ({address}): {type(cause).__name__}: {detail}"
        )


class ResourceStopError(LifecycleError, ExceptionGroup[Exception]):
    """One or more backends failed to stop; every failure is in ``exceptions``."""

    def __new__(cls, message: str, exceptions: Sequence[Exception]) -> Self:
        return super().__new__(cls, message, exceptions)


class NotStartedError(LifecycleError, RuntimeError):
    """The data layer was used before ``start()``."""


class EmbeddedPostgresError(LifecycleError):
    """The embedded Postgres server (or its ``initdb``) did not start or stop cleanly."""


class BackendNotConfiguredError(DataLayerError, LookupError):
    """The configured deployment mode does not start this backend."""


class BackendClosedError(DataLayerError, RuntimeError):
    """A call was made on a backend after ``close()``."""


class RabbitMQUnavailableError(DataLayerError, ConnectionError):
    """The connection to the broker is closed, or down while it reconnects."""


class StateBackendError(DataLayerError):
    """Root of the state backend errors; raised itself for a stored value another program
    wrote (the data layer cannot read it back)."""


class StateArgumentError(StateBackendError, ValueError):
    """An argument of a state backend call is out of range or of the wrong form (an empty
    key, a ttl <= 0, a value over ``max_value_bytes``); nothing was stored."""


class StateArgumentTypeError(StateBackendError, TypeError):
    """An argument of a state backend call has the wrong type (a value JSON cannot encode,
    an amount that is not an int), or ``increment`` found a non-integer under the key."""


class StateBackendUnavailableError(StateBackendError, ConnectionError):
    """The state store (Redis) could not be reached or did not answer in time."""


class EventBusError(DataLayerError):
    """Root of the event bus errors."""


class EventArgumentError(EventBusError, ValueError):
    """An argument of an event call is out of range or of the wrong form (a malformed
    pattern or event type, a naive timestamp, a concurrency < 1); nothing was sent."""


class EventArgumentTypeError(EventBusError, TypeError):
    """An argument of an event call has the wrong type (a payload that is not a mapping,
    a handler that is not callable, a pattern that is not a str)."""


class EventSerializationError(EventBusError, TypeError):
    """The event's payload cannot be encoded as JSON."""


class EventTooLargeError(EventBusError, ValueError):
    """The encoded event is larger than ``max_event_bytes``."""


class BusClosedError(EventBusError, RuntimeError):
    """``publish`` was called after ``close()``."""


class PublishError(EventBusError, ConnectionError):
    """The broker did not accept or confirm the event within ``publish_timeout``."""


class HandlerTimeoutError(EventBusError, TimeoutError):
    """A handler ran longer than ``handler_timeout_s``; the attempt counts as failed."""


class MalformedEventError(EventBusError, ValueError):
    """A message body is not a valid event envelope (not JSON, a field missing or mistyped)."""


class StreamOverflowError(EventBusError, RuntimeError):
    """The reader of an event stream fell more than its buffer behind; the stream ends."""


class VectorIndexError(DataLayerError):
    """Root of the vector index errors."""


class DimensionMismatchError(VectorIndexError, ValueError):
    """A vector's length differs from the index dimension."""

    def __init__(self, expected: int, got: int, *, row: int | None = None) -> None:
        self.expected = expected
        self.got = got
        self.row = row
        where = "" if row is None else f" at row {row}"
        super().__init__(f"vector{where} has dimension {got}, expected {expected}")


class InvalidVectorError(VectorIndexError, ValueError):
    """A vector contains NaN or inf, or is all zeros."""


class InvalidIdentifierError(VectorIndexError, ValueError):
    """A namespace, vector id or metadata value is not of the accepted form."""


class InvalidQueryError(VectorIndexError, ValueError):
    """A query argument (``top_k`` or the metadata filter) is not of the accepted form."""


class SnapshotCorruptError(VectorIndexError):
    """A snapshot on disk failed verification; nothing was loaded from it."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"snapshot {path} is corrupt: {reason}")


class IndexLockedError(VectorIndexError):
    """Another process already writes to this index directory."""


class ReadOnlyIndexError(VectorIndexError, RuntimeError):
    """A write (upsert, delete, save, autosave) on an index opened with ``read_only=True``."""


class VectorStoreUnavailableError(VectorIndexError, RuntimeError):
    """The server cannot hold the vector store: no pgvector, or a dimension it cannot index.

    The message names the server (password masked), the pgvector version found and the way
    out (install pgvector, or ``VECTORS__BACKEND=faiss``).
    """


class EntityError(DataLayerError):
    """Root of the event-sourced entity errors."""


class EntityNotFoundError(EntityError, LookupError):
    """No live entity of that type has that id (never created, or deleted)."""

    def __init__(self, entity_type: str, entity_id: object) -> None:
        self.entity_type = entity_type
        self.entity_id = entity_id
        super().__init__(f"no {entity_type} with id {entity_id}")


class EntityExistsError(EntityError):
    """A create names an id an entity of that type already has; nothing was written. Ids are
    never reused: a deleted entity keeps its id (its row stays as a tombstone)."""

    def __init__(self, entity_type: str, entity_id: object) -> None:
        self.entity_type = entity_type
        self.entity_id = entity_id
        super().__init__(
            f"{entity_type} {entity_id} already exists (ids are never reused, deleted "
            f"entities' included): leave the id out to have one generated, or update that "
            f"{entity_type}"
        )


class InvalidEntityError(EntityError, ValueError):
    """Fields that do not fit the entity type's model (the reasons are in the message)."""


class ConcurrencyError(EntityError):
    """The change named a version the entity has moved past (D2); nothing was written."""

    def __init__(self, entity_type: str, entity_id: object, expected: int, current: int) -> None:
        self.entity_type = entity_type
        self.entity_id = entity_id
        self.expected = expected
        self.current = current
        super().__init__(
            f"{entity_type} {entity_id} is at version {current}, not {expected}: "
            "read it again and retry with If-Match set to the current version"
        )


class MissingParentError(EntityError, ValueError):
    """A parent reference (``agent_id``, ``goal_id``, ...) names no live entity."""

    def __init__(self, field: str, parent_type: str, parent_id: object) -> None:
        self.field = field
        self.parent_type = parent_type
        self.parent_id = parent_id
        super().__init__(f"{field}: no {parent_type} with id {parent_id}; create it first")


class HasChildrenError(EntityError):
    """A parent still has live children; delete them first (they are named)."""

    def __init__(self, entity_type: str, entity_id: object, children: dict[str, list[str]]) -> None:
        self.entity_type = entity_type
        self.entity_id = entity_id
        self.children = children
        named = "; ".join(f"{kind}: {', '.join(ids)}" for kind, ids in children.items())
        super().__init__(
            f"{entity_type} {entity_id} still has children ({named}); delete them first"
        )


class InvalidListingError(EntityError, ValueError):
    """A listing's limit, offset or filters are out of bounds or do not go together."""


class InvalidCursorError(InvalidListingError):
    """A listing cursor that this layer did not hand out (or one for another listing)."""


class EventNotFoundError(EntityError, LookupError):
    """No event has that id."""


class EntitiesNotReadyError(EntityError):
    """A relay cannot publish or a projection keeps failing; ``details`` has every consumer's
    checkpoint and lag."""

    def __init__(self, message: str, details: dict[str, object]) -> None:
        self.details = details
        super().__init__(message)


class DatabaseError(DataLayerError):
    """Root of the database module's errors (``app.database``)."""


class DatabaseConnectionError(DatabaseError, ConnectionError):
    """Postgres could not be reached, or the connection was lost during a statement."""


class DatabaseNotConnectedError(DatabaseError, RuntimeError):
    """A query on a client before ``connect()`` or after ``close()``."""


class QueryParameterError(DatabaseError, ValueError):
    """The named parameters given do not match the ones the query uses."""

    def __init__(
        self, message: str, *, missing: Sequence[str] = (), extra: Sequence[str] = ()
    ) -> None:
        self.missing = tuple(missing)
        self.extra = tuple(extra)
        super().__init__(message)


class SqlIdentifierError(DatabaseError, ValueError):
    """A table or column name is not a plain SQL identifier (refused, never interpolated)."""


class TransactionError(DatabaseError, RuntimeError):
    """A transaction was misused: a statement that cannot run inside one, or use after its end."""


class BackendAlreadyRegisteredError(DatabaseError, ValueError):
    """``register_backend`` was called with a name already taken (pass ``replace=True``)."""


class QueryError(DatabaseError):
    """Postgres refused a statement. The driver's error is ``__cause__``; the facts are fields."""

    def __init__(
        self,
        message: str,
        *,
        operation: str,
        table: str | None = None,
        sqlstate: str | None = None,
        constraint: str | None = None,
    ) -> None:
        self.operation = operation
        self.table = table
        self.sqlstate = sqlstate
        self.constraint = constraint
        super().__init__(message)


class QuerySyntaxError(QueryError, ValueError):
    """The SQL has a syntax error, or names a column or function that does not exist."""


class UndefinedTableError(QueryError, LookupError):
    """The statement names a table (or view) that does not exist."""


class InvalidParameterValueError(QueryError, ValueError):
    """A parameter's value cannot be sent as the type the statement needs."""


class IntegrityConstraintError(QueryError, ValueError):
    """A constraint (not null, foreign key, check, unique, exclusion) refused the row."""


class UniqueViolationError(IntegrityConstraintError):
    """A unique (or primary) key already holds the value."""


class StatementTimeoutError(QueryError, TimeoutError):
    """The statement was cancelled by ``statement_timeout`` or the client's command timeout."""


class MigrationError(DatabaseError):
    """Root of the schema migration errors."""


class MigrationFileError(MigrationError, ValueError):
    """A migration file has a bad name, a duplicate version, or cannot be read."""


class MigrationChecksumError(MigrationError):
    """An applied migration file was changed after it was applied."""

    def __init__(self, file: str, applied_checksum: str, current_checksum: str) -> None:
        self.file = file
        self.applied_checksum = applied_checksum
        self.current_checksum = current_checksum
        super().__init__(
            f"migration {file} was changed after it was applied: the ledger has checksum "
            f"{applied_checksum}, the file now has {current_checksum}; restore the file, or "
            "after review accept the new one with `python -m app migrate repair`"
        )


class MigrationFailedError(MigrationError):
    """A migration file's SQL failed; its transaction (with its ledger row) was rolled back."""

    def __init__(self, file: str, cause: BaseException) -> None:
        self.file = file
        detail = str(cause) or type(cause).__name__
        super().__init__(f"migration {file} failed: {detail}")
