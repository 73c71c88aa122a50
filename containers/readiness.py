"""Readiness: ping every running resource concurrently under one deadline.

The one health path: ``python -m app check``, ``/health/ready`` and ``DataLayer.health()`` all
report ``check_readiness(lifecycle)``: each started or external (overridden) resource that has
a ping, and each declared resource the settings leave off as ``disabled``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from containers.lifecycle import Lifecycle, ResourceUnit

__all__ = ["Readiness", "check_readiness", "ping_all", "readiness_table"]

DEFAULT_PING_TIMEOUT_S = 2.0

Check = Callable[[], Awaitable[object]]


@dataclass(frozen=True)
class Readiness:
    """How one backend answered its ping."""

    resource: str
    status: Literal["ok", "error", "disabled"]
    latency_ms: float
    address: str = "-"
    error: str | None = None
    # What a ping returned (or its error carried) as a mapping: e.g. the entities' lag.
    details: Mapping[str, object] | None = None

    @property
    def ok(self) -> bool:
        """Not an error: it answered, or it is switched off."""
        return self.status != "error"

    def as_json(self) -> dict[str, object]:
        return {
            "status": self.status,
            "latency_ms": self.latency_ms,
            "address": self.address,
            "error": self.error,
            "details": self.details,
        }


async def _timed(check: Check) -> tuple[float, object]:
    started = time.perf_counter()
    result = await check()
    return round((time.perf_counter() - started) * 1000, 2), result


def _details(value: object) -> Mapping[str, object] | None:
    return value if isinstance(value, Mapping) else None


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


async def ping_all(
    checks: Mapping[str, Check],
    *,
    timeout_s: float = DEFAULT_PING_TIMEOUT_S,
    addresses: Mapping[str, str] | None = None,
) -> dict[str, Readiness]:
    """Run every check concurrently under one deadline of ``timeout_s``; never raises.

    A check still running at the deadline is cancelled and reported as an error, so one
    hung backend costs the caller ``timeout_s`` at most.
    """
    addresses = addresses or {}
    started = time.perf_counter()
    tasks = {name: asyncio.ensure_future(_timed(check)) for name, check in checks.items()}
    try:
        if tasks:
            await asyncio.wait(tasks.values(), timeout=timeout_s)
    finally:  # at the deadline, and when the caller itself is cancelled
        for task in tasks.values():
            task.cancel()
    results: dict[str, Readiness] = {}
    for name, task in tasks.items():
        address = addresses.get(name, "-")
        if task.cancelled() or not task.done():
            waited = round((time.perf_counter() - started) * 1000, 2)
            error = f"no answer within {timeout_s} s"
            results[name] = Readiness(name, "error", waited, address, error)
        elif (exc := task.exception()) is not None:
            waited = round((time.perf_counter() - started) * 1000, 2)
            details = _details(getattr(exc, "details", None))
            results[name] = Readiness(name, "error", waited, address, _error_text(exc), details)
        else:
            latency, value = task.result()
            results[name] = Readiness(name, "ok", latency, address, details=_details(value))
    return results


def _unit_check(lifecycle: Lifecycle, unit: ResourceUnit) -> Check:
    async def check() -> object:
        assert unit.ping is not None
        return await unit.ping(lifecycle.value(unit.name))

    return check


async def check_readiness(
    lifecycle: Lifecycle, *, timeout_s: float = DEFAULT_PING_TIMEOUT_S
) -> dict[str, Readiness]:
    """Ping every started and external unit that has a ping (a unit that is not running
    reports an error), and list the disabled ones; never raises."""
    units = [unit for unit in (*lifecycle.units, *lifecycle.external) if unit.ping is not None]
    results = await ping_all(
        {unit.name: _unit_check(lifecycle, unit) for unit in units},
        timeout_s=timeout_s,
        addresses={unit.name: unit.address for unit in units},
    )
    for name in lifecycle.disabled:
        results[name] = Readiness(name, "disabled", 0.0)
    return results


def readiness_table(results: dict[str, Readiness]) -> str:
    """A plain-text table of the readiness results, one backend per line."""
    rows = [("backend", "status", "latency_ms", "address", "error")]
    rows += [
        (r.resource, r.status, f"{r.latency_ms:.2f}", r.address, r.error or "")
        for r in results.values()
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    # After a blank line, one line per backend that reported details (the entities' lags).
    details = [
        f"{r.resource} details: {json.dumps(r.details, default=str, sort_keys=True)}"
        for r in results.values()
        if r.details
    ]
    if details:
        lines += ["", *details]
    return "\n".join(lines)
