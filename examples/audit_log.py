"""A resource of your own, run by the product's lifecycle: an audit trail of every event.

``AuditedContainer`` adds one ``providers.Resource`` to the product's ``Container`` and declares
it with ``Managed`` beside it. No project file changes: every entry point starts it after the
event bus it uses (read from the provider graph), rolls it back if a later start fails, pings
it in readiness and stops it before the bus::

    python -m examples.audit_log
    python -m app check --container examples.audit_log:AuditedContainer
    python -m app serve --container examples.audit_log:AuditedContainer
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO

from dependency_injector import providers

from app import DataEvent, DataLayer
from app.events import EventBus, Subscription
from containers import Container, Managed, ping_method
from settings import Settings

__all__ = ["AuditTrail", "AuditedContainer", "audit_trail"]


class AuditTrail:
    """Appends every event published on the bus to a JSON-lines file."""

    def __init__(self, path: Path, bus: EventBus) -> None:
        self.path = path
        self._bus = bus
        self._file: IO[str] | None = None
        self._subscription: Subscription | None = None

    async def open(self) -> None:
        """Open the file for appending, then subscribe to every event."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = await asyncio.to_thread(self.path.open, "a", encoding="utf-8")
        self._subscription = self._bus.subscribe_all(self._append)
        await self._subscription

    async def _append(self, event: DataEvent) -> None:
        if self._file is None:
            raise RuntimeError(f"audit trail {self.path} is closed")
        line = json.dumps({"id": str(event.id), "type": event.type, "key": event.key})
        await asyncio.to_thread(self._write, self._file, line)

    @staticmethod
    def _write(file: IO[str], line: str) -> None:
        file.write(line + "\n")
        file.flush()

    async def ping(self) -> None:
        """Raise unless the file is open and still on disk."""
        if self._file is None or self._file.closed:
            raise RuntimeError(f"audit trail {self.path} is closed")
        if not await asyncio.to_thread(self.path.exists):
            raise FileNotFoundError(f"audit trail {self.path} was removed")

    async def close(self) -> None:
        """Unsubscribe, then close the file."""
        if self._subscription is not None:
            self._bus.unsubscribe(self._subscription)
            self._subscription = None
        if self._file is not None:
            await asyncio.to_thread(self._file.close)


async def audit_trail(settings: Settings, bus: EventBus) -> AsyncIterator[AuditTrail]:
    """The resource function: open the trail, hand it out, close it at stop."""
    trail = AuditTrail(settings.data_dir / "audit.jsonl", bus)
    await trail.open()
    try:
        yield trail
    finally:
        await trail.close()


class AuditedContainer(Container):
    """The product's container plus the audit trail."""

    audit = providers.Resource(audit_trail, Container.settings, Container.event_bus)
    audit_lifecycle = Managed(
        "audit",
        ping=ping_method,
        address=lambda settings: str(settings.data_dir / "audit.jsonl"),
    )


async def main() -> None:
    """Start everything with the audit trail, publish one event, print health, stop."""
    async with DataLayer(container=AuditedContainer()) as data:
        await data.events.publish(DataEvent("user.created", "users", "ada"))
        await data.events.drain(5.0)
        trail: AuditTrail = data.resource("audit")
        print(f"audit trail: {trail.path}")
        health = await data.health()
        for name, detail in sorted(health.details.items()):
            print(f"{name:14} {detail}")


if __name__ == "__main__":
    asyncio.run(main())
