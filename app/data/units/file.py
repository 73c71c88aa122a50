"""``DataUnitFile``: a JSON value in a file, safe against crashes and other processes.

See :mod:`app.data.units.file_store` for the file protocol (atomic replace with ``fsync``,
a ``flock`` shared by readers and writers, a backup of the previous version). File work runs
in a worker thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import structlog

from app.data.errors import DataUnitConfigError
from app.data.units.base import DataUnitBase
from app.data.units.config import DataUnitConfig, DataUnitType
from app.data.units.file_store import JsonFileStore, encode

__all__ = ["DataUnitFile"]

log = structlog.get_logger(__name__)

DEFAULT_LOCK_TIMEOUT_S = 10.0


class DataUnitFile(DataUnitBase):
    """A JSON value stored in ``file_path`` (or ``config.file_path``).

    Reading a damaged file returns the backup's value, logs ``data_unit.recovered`` and puts
    the backup back in place; if both are damaged, ``DataUnitCorruptError``. A missing file
    reads as ``config.initial_value``.
    """

    default_type = DataUnitType.FILE

    def __init__(
        self,
        file_path: str | Path | None = None,
        config: DataUnitConfig | None = None,
        *,
        name: str | None = None,
        lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S,
    ) -> None:
        if config is None:
            config = DataUnitConfig(DataUnitType.FILE, persistent=True)
        path = file_path if file_path is not None else config.file_path
        if path is None or str(path) == "":
            raise DataUnitConfigError(
                "DataUnitFile needs a file path: pass file_path or set DataUnitConfig.file_path"
            )
        if not lock_timeout_s > 0:
            raise DataUnitConfigError(f"lock_timeout_s must be > 0; got {lock_timeout_s!r}")
        config.file_path = Path(path)
        super().__init__(config, name=name)
        self.file_path = Path(path)
        self._store = JsonFileStore(
            self.file_path, encoding=self.config.encoding, lock_timeout_s=lock_timeout_s
        )

    async def _initialize(self) -> None:
        await asyncio.to_thread(self.file_path.parent.mkdir, parents=True, exist_ok=True)

    async def _get(self) -> Any:
        result = await asyncio.to_thread(self._store.read)
        if not result.found:
            return self.config.initial_value
        if result.from_backup:
            log.warning(
                "data_unit.recovered",
                unit=self.name,
                path=str(self.file_path),
                problem=result.problem or "missing",
            )
            await asyncio.to_thread(self._store.restore_from_backup)
        return result.value

    async def _set(self, data: Any) -> None:
        payload = encode(data)  # a bad value is refused before the file is touched
        await asyncio.to_thread(self._store.write, payload)

    async def _clear(self) -> None:
        await asyncio.to_thread(self._store.remove)
