"""``DataUnitBase``: one value behind ``get``/``set``/``clear``, with a lifecycle and metadata.

A unit initialises itself on first use (as the original design's units did), so
``initialize()`` is optional; after ``shutdown()`` every call raises
:class:`~app.data.errors.DataUnitClosedError`. Calls on one unit are serialised by an
``asyncio.Lock``: a ``set`` never interleaves with another ``set`` or a ``get``.
"""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from typing import Any

import structlog

from app.data.errors import DataUnitClosedError
from app.data.units.config import DataUnitConfig, DataUnitType

__all__ = ["DataUnitBase"]

log = structlog.get_logger(__name__)


class DataUnitBase(ABC):
    """A named holder of one value; subclasses say where the value lives."""

    default_type = DataUnitType.MEMORY

    def __init__(self, config: DataUnitConfig | None = None, *, name: str | None = None) -> None:
        self.config = config if config is not None else DataUnitConfig(self.default_type)
        self.name = name or self.config.name or type(self).__name__
        self._metadata: dict[str, Any] = dict(self.config.metadata)
        self._lock = asyncio.Lock()
        self._initialized = False
        self._closed = False

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def is_initialized(self) -> bool:
        """True between ``initialize()`` (or the first use) and ``shutdown()``."""
        return self._initialized and not self._closed

    async def initialize(self) -> None:
        """Prepare the unit (idempotent); called by the first ``get``/``set`` if not before."""
        self._check_open()
        if self._initialized:
            return
        async with self._lock:
            if not self._initialized:
                await self._initialize()
                self._initialized = True
                self._metadata.setdefault("created_at", time.time())
                log.debug("data_unit.initialized", unit=self.name, kind=self.config.kind.value)

    async def shutdown(self) -> None:
        """Release what the unit holds; idempotent. Later calls raise DataUnitClosedError."""
        if self._closed:
            return
        self._closed = True
        await self._shutdown()
        log.debug("data_unit.shutdown", unit=self.name)

    # -- the value ---------------------------------------------------------------------------

    async def get(self) -> Any:
        """The current value (``initial_value`` until one is set)."""
        await self._ready()
        async with self._lock:
            return await self._get()

    async def set(self, data: Any) -> None:
        """Replace the value."""
        await self._ready()
        async with self._lock:
            await self._set(data)
            self._metadata["last_updated"] = time.time()

    async def clear(self) -> None:
        """Drop the value: ``get()`` returns ``initial_value`` again."""
        await self._ready()
        async with self._lock:
            await self._clear()
            self._metadata["last_updated"] = time.time()

    async def read(self) -> Any:
        """Alias of :meth:`get` (the original design's name)."""
        return await self.get()

    async def write(self, data: Any) -> None:
        """Alias of :meth:`set` (the original design's name)."""
        await self.set(data)

    # -- metadata ----------------------------------------------------------------------------

    @property
    def metadata(self) -> dict[str, Any]:
        """A copy of the unit's metadata (``created_at``, ``last_updated`` and yours)."""
        return dict(self._metadata)

    async def set_metadata(self, key: str, value: Any) -> None:
        """Attach ``value`` to the unit under ``key``."""
        self._check_open()
        self._metadata[key] = value

    async def get_metadata(self, key: str, default: Any = None) -> Any:
        """The metadata under ``key``, or ``default``."""
        self._check_open()
        return self._metadata.get(key, default)

    # -- for subclasses ----------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise DataUnitClosedError(
                f"data unit {self.name!r} is shut down; create a new unit to use it again"
            )

    async def _ready(self) -> None:
        self._check_open()
        if not self._initialized:
            await self.initialize()

    async def _initialize(self) -> None:  # noqa: B027  (an optional hook)
        """Called once, under the unit's lock."""

    async def _shutdown(self) -> None:  # noqa: B027  (an optional hook)
        """Called once by ``shutdown()``."""

    @abstractmethod
    async def _get(self) -> Any: ...

    @abstractmethod
    async def _set(self, data: Any) -> None: ...

    @abstractmethod
    async def _clear(self) -> None: ...

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"
