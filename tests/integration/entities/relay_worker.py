"""A relay in a process of its own, for the crash tests: it publishes the test database's
events to a file (one ``position event_id`` line each, flushed and fsynced before the batch
counts as acknowledged) until it is killed.

``python -m tests.integration.entities.relay_worker DSN FILE BATCH_SIZE``
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import asyncpg

from app.entities import StoredEvent
from app.entities.relay import Relay


class FileSink:
    """Appends each event to a file; slow on purpose, so a kill lands inside a batch."""

    def __init__(self, path: Path) -> None:
        self.name = "file"
        self._file = path.open("a", encoding="utf-8")

    async def publish(self, events: Sequence[StoredEvent]) -> None:
        for event in events:
            self._file.write(f"{event.global_position} {event.event_id}\n")
            self._file.flush()
            await asyncio.sleep(0.001)
        os.fsync(self._file.fileno())


async def main(dsn: str, path: Path, batch_size: int) -> None:
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    relay = Relay(pool, FileSink(path), batch_size=batch_size, poll_interval_s=0.05)
    await relay.start()
    await asyncio.Event().wait()  # until killed


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])))
