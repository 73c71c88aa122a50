"""pyarrow, the optional extra behind the Parquet format, and the schema files use."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from app.data.errors import MissingExtraError

__all__ = ["message_schema", "pyarrow_modules"]


def pyarrow_modules(what: str) -> tuple[ModuleType, ModuleType]:
    """``(pyarrow, pyarrow.parquet)``, or MissingExtraError naming the ``parquet`` extra."""
    try:
        pa = importlib.import_module("pyarrow")
        pq = importlib.import_module("pyarrow.parquet")
    except ImportError:
        raise MissingExtraError(what, "parquet", "pyarrow") from None
    return pa, pq


def message_schema(pa: ModuleType, fields: tuple[str, ...]) -> Any:
    """The Arrow schema of a message file with these fields (metadata as JSON text)."""
    types = {
        "message_id": pa.int64(),
        "conversation_id": pa.string(),
        "timestamp": pa.timestamp("us", tz="UTC"),
        "user_input": pa.string(),
        "agent_response": pa.string(),
        "response_time_ms": pa.float64(),
        "metadata": pa.string(),
        "session_id": pa.string(),
        "user_id": pa.string(),
        "created_at": pa.timestamp("us", tz="UTC"),
        "last_activity": pa.timestamp("us", tz="UTC"),
        "is_active": pa.bool_(),
    }
    return pa.schema([(name, types[name]) for name in fields])
