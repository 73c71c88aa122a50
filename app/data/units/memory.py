"""``DataUnitMemory``: the value kept in the process, handed back as stored."""

from __future__ import annotations

from typing import Any

from app.data.units.base import DataUnitBase
from app.data.units.config import DataUnitType

__all__ = ["DataUnitMemory"]


class DataUnitMemory(DataUnitBase):
    """An in-process value. ``get`` returns the stored object itself (no copy), as the
    original design's unit did: it is the fast path for passing data between steps."""

    default_type = DataUnitType.MEMORY

    async def _initialize(self) -> None:
        self._value: Any = self.config.initial_value

    async def _get(self) -> Any:
        return self._value

    async def _set(self, data: Any) -> None:
        self._value = data

    async def _clear(self) -> None:
        self._value = self.config.initial_value
