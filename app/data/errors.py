"""The errors of :mod:`app.data`: data units, sessions, conversations, export and import.

Every one derives from :class:`~app.errors.DataLayerError` and, where the meaning matches,
the built-in a caller would expect::

    DataLayerError
    ├── DataUnitError
    │   ├── DataUnitConfigError (ValueError)      a DataUnitConfig field out of range
    │   ├── DataUnitTypeError (TypeError)         a value this unit cannot hold
    │   ├── DataUnitClosedError (RuntimeError)    a call after shutdown()
    │   ├── DataUnitLockedError (TimeoutError)    another process held the file's lock too long
    │   ├── DataUnitCorruptError                  the file and its backup are both unreadable
    │   └── DataUnitOverflowError                 a subscriber fell more than its queue behind
    ├── SessionError
    │   ├── InvalidSessionError (ValueError)      a bad user id, metadata or config value
    │   ├── SessionNotFoundError (LookupError)    no live session with that id
    │   └── SessionLimitError                     the cap is reached and the policy is "reject"
    ├── ConversationError
    │   ├── InvalidConversationError (ValueError) a message, id, query or limit out of bounds
    │   └── ConversationStoreError                Postgres refused or failed a statement
    └── TransferError
        ├── UnrepresentableError (ValueError)     stored text a format cannot carry (XML controls)
        ├── MalformedImportError (ValueError)     a file's row or field is wrong; nothing imported
        │   └── UnsafeXMLError                    a DOCTYPE / entity declaration in an XML file
        ├── FieldMappingError (ValueError)        field_mapping names a field that does not exist
        └── MissingExtraError (ImportError)       a format needs an optional extra not installed
"""

from __future__ import annotations

from app.errors import DataLayerError

__all__ = [
    "ConversationError",
    "ConversationStoreError",
    "DataUnitClosedError",
    "DataUnitConfigError",
    "DataUnitCorruptError",
    "DataUnitError",
    "DataUnitLockedError",
    "DataUnitOverflowError",
    "DataUnitTypeError",
    "FieldMappingError",
    "InvalidConversationError",
    "InvalidSessionError",
    "MalformedImportError",
    "MissingExtraError",
    "SessionError",
    "SessionLimitError",
    "SessionNotFoundError",
    "TransferError",
    "UnrepresentableError",
    "UnsafeXMLError",
]


class DataUnitError(DataLayerError):
    """Root of the data unit errors."""


class DataUnitConfigError(DataUnitError, ValueError):
    """A :class:`~app.data.units.DataUnitConfig` field is out of range or of the wrong kind."""


class DataUnitTypeError(DataUnitError, TypeError):
    """The unit cannot hold this value (not JSON for a file unit, not ``str`` for a string one)."""


class DataUnitClosedError(DataUnitError, RuntimeError):
    """The unit (or a stream subscription) was used after ``shutdown()``."""


class DataUnitLockedError(DataUnitError, TimeoutError):
    """Another writer held the file's lock longer than the unit's ``lock_timeout_s``."""


class DataUnitCorruptError(DataUnitError):
    """Neither the file nor its backup holds valid JSON; nothing was read or overwritten."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(
            f"data unit file {path} and its backup are unreadable ({reason}); restore one "
            "of them by hand or clear() the unit to start again"
        )


class DataUnitOverflowError(DataUnitError):
    """The subscriber's queue was full when a value came: it was detached, values were lost."""

    def __init__(self, maxsize: int, dropped: int) -> None:
        self.maxsize = maxsize
        self.dropped = dropped
        super().__init__(
            f"stream subscriber fell behind: its queue of {maxsize} was full and {dropped} "
            "value(s) were dropped; it is detached, subscribe() again and read faster or raise "
            "cache_size"
        )


class SessionError(DataLayerError):
    """Root of the session manager errors."""


class InvalidSessionError(SessionError, ValueError):
    """A user id, session id, metadata or setting is not of the accepted form."""


class SessionNotFoundError(SessionError, LookupError):
    """No live session has this id (never created, deleted, evicted or expired)."""

    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        super().__init__(f"no live session {session_id!r} (expired, evicted or never created)")


class SessionLimitError(SessionError):
    """The session cap is reached and the policy is ``reject``."""

    def __init__(self, scope: str, cap: int) -> None:
        self.scope = scope
        self.cap = cap
        super().__init__(
            f"{scope} has {cap} live sessions, the cap, and the policy is 'reject'; delete one "
            "or wait for one to expire"
        )


class ConversationError(DataLayerError):
    """Root of the conversation history errors."""


class InvalidConversationError(ConversationError, ValueError):
    """A message, conversation id, query or limit is out of the accepted bounds."""


class ConversationStoreError(ConversationError):
    """Postgres failed a conversation statement (the driver's error is the cause)."""


class TransferError(DataLayerError):
    """Root of the export and import errors."""


class UnrepresentableError(TransferError, ValueError):
    """A stored value cannot be written in the chosen format (a control character in XML)."""


class MalformedImportError(TransferError, ValueError):
    """A row or field of an import file is wrong; the import stored nothing."""

    def __init__(self, reason: str, *, row: int | None = None, field: str | None = None) -> None:
        self.row = row
        self.field = field
        self.reason = reason
        where = []
        if row is not None:
            where.append(f"row {row}")
        if field is not None:
            where.append(f"field {field!r}")
        prefix = ", ".join(where)
        super().__init__(
            f"{prefix}: {reason}; nothing was imported"
            if prefix
            else f"{reason}; nothing was imported"
        )


class UnsafeXMLError(MalformedImportError):
    """An XML import declared a DOCTYPE or entities (expansion bombs, external files)."""


class FieldMappingError(TransferError, ValueError):
    """``field_mapping`` names a target field that messages do not have."""


class MissingExtraError(TransferError, ImportError):
    """The format needs an optional dependency that is not installed."""

    def __init__(self, what: str, extra: str, module: str) -> None:
        self.extra = extra
        super().__init__(
            f"{what} needs the optional extra {extra!r} ({module} is not installed): "
            f'pip install -e ".[{extra}]"'
        )
