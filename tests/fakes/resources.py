"""Fake resources for lifecycle tests: real ``providers.Resource``s that record what happens."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from dependency_injector import providers

from containers.lifecycle import ResourceUnit


@dataclass
class Journal:
    """What the fake resources did, in order: ("start"|"started"|"stop"|"stopped", name)."""

    entries: list[tuple[str, str]] = field(default_factory=list)

    def names(self, kind: str) -> list[str]:
        return [name for what, name in self.entries if what == kind]


def fake_unit(
    journal: Journal,
    name: str,
    *,
    depends_on: tuple[str, ...] = (),
    start_delay_s: float = 0.0,
    stop_delay_s: float = 0.0,
    fail_start: Exception | None = None,
    fail_stop: Exception | None = None,
    stop_timeout_s: float = 5.0,
) -> ResourceUnit:
    """A unit whose resource sleeps, fails or succeeds as told, recording each step."""

    async def resource() -> AsyncIterator[str]:
        journal.entries.append(("start", name))
        await asyncio.sleep(start_delay_s)
        if fail_start is not None:
            raise fail_start
        journal.entries.append(("started", name))
        yield f"value-of-{name}"
        journal.entries.append(("stop", name))
        await asyncio.sleep(stop_delay_s)
        if fail_stop is not None:
            raise fail_stop
        journal.entries.append(("stopped", name))

    async def ping(value: str) -> None:
        assert value == f"value-of-{name}"

    return ResourceUnit(
        name,
        providers.Resource(resource),
        address=f"fake://user:***@{name}",
        depends_on=depends_on,
        ping=ping,
        stop_timeout_s=stop_timeout_s,
    )
