"""``DataUnitType`` and ``DataUnitConfig``: what kind of unit and how it keeps its value."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from app.data.errors import DataUnitConfigError

__all__ = ["DataUnitConfig", "DataUnitType"]


class DataUnitType(StrEnum):
    """The kinds of data unit (the original design's names)."""

    MEMORY = "memory"
    FILE = "file"
    STRING = "string"
    STREAM = "stream"


@dataclass(slots=True)
class DataUnitConfig:
    """How a data unit behaves.

    ``data_type`` may be given as its string value (``"memory"``). ``cache_size`` bounds what
    the unit buffers: for a stream, each subscriber's queue. ``file_path`` is where a file
    unit keeps its JSON; ``initial_value`` is what ``get()`` returns before anything is set.
    """

    data_type: DataUnitType | str = DataUnitType.MEMORY
    persistent: bool = False
    cache_size: int = 1000
    file_path: str | Path | None = None
    encoding: str = "utf-8"
    initial_value: Any = None
    name: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        try:
            self.data_type = DataUnitType(self.data_type)
        except ValueError:
            known = ", ".join(kind.value for kind in DataUnitType)
            raise DataUnitConfigError(
                f"data_type must be one of {known}; got {self.data_type!r}"
            ) from None
        if (
            isinstance(self.cache_size, bool)
            or not isinstance(self.cache_size, int)
            or (self.cache_size < 1)
        ):
            raise DataUnitConfigError(f"cache_size must be an int >= 1; got {self.cache_size!r}")
        try:
            "".encode(self.encoding)
        except LookupError:
            raise DataUnitConfigError(
                f"encoding must name a codec Python knows; got {self.encoding!r}"
            ) from None

    @property
    def kind(self) -> DataUnitType:
        """``data_type`` as the enum (``__post_init__`` converted it)."""
        return DataUnitType(self.data_type)
