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
    │   └── NotStartedError (RuntimeError)       used before start()
    ├── BackendNotConfiguredError (LookupError)  the configured mode does not start this backend
    ├── BackendClosedError (RuntimeError)        a call after close()
    ├── StateBackendError
    │   └── StateBackendUnavailableError (ConnectionError)   Redis did not answer
    ├── EventBusError
    │   ├── EventSerializationError (TypeError)  payload is not JSON-serialisable
    │   ├── EventTooLargeError (ValueError)      encoded event over max_event_bytes
    │   ├── BusClosedError (RuntimeError)        publish after close()
    │   ├── PublishError (ConnectionError)       the broker did not confirm in time
    │   ├── HandlerTimeoutError (TimeoutError)   a handler ran past handler_timeout_s
    │   └── MalformedEventError (ValueError)     a message is not our event envelope
    └── VectorIndexError
        ├── DimensionMismatchError (ValueError)  vector of the wrong length
        ├── InvalidVectorError (ValueError)      NaN, inf or zero vector
        ├── InvalidIdentifierError (ValueError)  bad namespace, id or metadata
        ├── InvalidQueryError (ValueError)       bad top_k or metadata filter
        ├── SnapshotCorruptError                 a snapshot failed verification on load
        ├── IndexLockedError                     another process writes this index directory
        └── ReadOnlyIndexError (RuntimeError)    a write on an index opened read_only=True
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Self

__all__ = [
    "BackendClosedError",
    "BackendNotConfiguredError",
    "BusClosedError",
    "ConfigurationError",
    "DataLayerError",
    "DeclarationError",
    "DimensionMismatchError",
    "EventBusError",
    "EventSerializationError",
    "EventTooLargeError",
    "HandlerTimeoutError",
    "IndexLockedError",
    "InvalidIdentifierError",
    "InvalidQueryError",
    "InvalidVectorError",
    "LifecycleError",
    "MalformedEventError",
    "NotStartedError",
    "PublishError",
    "ReadOnlyIndexError",
    "ResourceStartError",
    "ResourceStopError",
    "SnapshotCorruptError",
    "StateBackendError",
    "StateBackendUnavailableError",
    "UnitGraphError",
    "VectorIndexError",
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


class BackendNotConfiguredError(DataLayerError, LookupError):
    """The configured deployment mode does not start this backend."""


class BackendClosedError(DataLayerError, RuntimeError):
    """A call was made on a backend after ``close()``."""


class StateBackendError(DataLayerError):
    """Root of the state backend errors that are not argument errors."""


class StateBackendUnavailableError(StateBackendError, ConnectionError):
    """The state store (Redis) could not be reached or did not answer in time."""


class EventBusError(DataLayerError):
    """Root of the event bus errors."""


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
