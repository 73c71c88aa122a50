"""``DataUnitString``: a text value with ``append``."""

from __future__ import annotations

from typing import Any

from app.data.errors import DataUnitTypeError
from app.data.units.base import DataUnitBase
from app.data.units.config import DataUnitConfig, DataUnitType

__all__ = ["DataUnitString"]


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise DataUnitTypeError(f"{what} must be a str; got {type(value).__name__}")
    return value


class DataUnitString(DataUnitBase):
    """A ``str``; ``initial_value`` (default ``""``) is what it starts as and clears to."""

    default_type = DataUnitType.STRING

    def __init__(
        self,
        initial_value: str | None = None,
        config: DataUnitConfig | None = None,
        *,
        name: str | None = None,
    ) -> None:
        super().__init__(config, name=name)
        given = initial_value if initial_value is not None else self.config.initial_value
        self._initial = _text("" if given is None else given, "initial_value")

    async def _initialize(self) -> None:
        self._value = self._initial

    async def _get(self) -> str:
        return self._value

    async def _set(self, data: Any) -> None:
        self._value = _text(data, "a string unit's value")

    async def _clear(self) -> None:
        self._value = self._initial

    async def append(self, data: str) -> None:
        """Add ``data`` at the end of the value."""
        text = _text(data, "appended data")
        await self._ready()
        async with self._lock:
            self._value += text
