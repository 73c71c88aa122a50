"""Data units: one value behind ``get``/``set``, in memory, in a file, as text or a stream."""

from app.data.units.base import DataUnitBase
from app.data.units.config import DataUnitConfig, DataUnitType
from app.data.units.file import DataUnitFile
from app.data.units.memory import DataUnitMemory
from app.data.units.stream import DataUnitStream, StreamSubscription
from app.data.units.string import DataUnitString

__all__ = [
    "DataUnitBase",
    "DataUnitConfig",
    "DataUnitFile",
    "DataUnitMemory",
    "DataUnitStream",
    "DataUnitString",
    "DataUnitType",
    "StreamSubscription",
]
