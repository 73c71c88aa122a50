"""Our lifecycle on top of dependency-injector's ``Resource`` providers.

``init_resources()`` starts every ``Selector`` branch, leaves siblings open when one fails and
stops tearing down at the first error. This lifecycle instead starts only the units it is given,
each as soon as the units it depends on are up (independent ones concurrently); a failed start
stops what was started, in reverse; stop runs in reverse start order, each unit with its own
timeout, continuing past failures and raising them all together.

External units (overridden providers) are resolved at start and pinged, never started or
stopped. ``containers.planning`` derives all of these from a container's declarations.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import structlog

from app.errors import NotStartedError, ResourceStartError, ResourceStopError, UnitGraphError

__all__ = ["Lifecycle", "ResourceUnit"]

log = structlog.get_logger(__name__)

Ping = Callable[[Any], Awaitable[object]]


@dataclass(frozen=True)
class ResourceUnit:
    """One backend to start and stop: its provider, what it needs first, how to ping it."""

    name: str
    provider: Any
    address: str = "-"
    depends_on: tuple[str, ...] = ()
    ping: Ping | None = None
    start_timeout_s: float = 30.0
    stop_timeout_s: float = 10.0
    aliases: tuple[Any, ...] = ()

    def providers(self) -> tuple[Any, ...]:
        """The unit's provider and the providers that hand out the same object (Selectors)."""
        return (self.provider, *self.aliases)


async def _maybe_await(value: object) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


class Lifecycle:
    """Start and stop a set of ``ResourceUnit``s; an async context manager, idempotent."""

    def __init__(
        self,
        units: Sequence[ResourceUnit],
        *,
        external: Sequence[ResourceUnit] = (),
        disabled: Mapping[str, str] | None = None,
    ) -> None:
        disabled = dict(disabled or {})
        names = [unit.name for unit in (*units, *external)] + list(disabled)
        if len(set(names)) != len(names):
            raise UnitGraphError(f"unit names must be unique, got {names}")
        self._units = {unit.name: unit for unit in units}
        for unit in units:
            missing = [dep for dep in unit.depends_on if dep not in self._units]
            if missing:
                raise UnitGraphError(f"unit {unit.name!r} depends on unknown units {missing}")
        self._check_acyclic()
        self._external = {unit.name: unit for unit in external}
        self._disabled = disabled
        self._started: list[ResourceUnit] = []
        self._values: dict[str, Any] = {}
        self._lock = asyncio.Lock()

    def _check_acyclic(self) -> None:
        done: set[str] = set()
        remaining = dict(self._units)
        while remaining:
            ready = [n for n, u in remaining.items() if set(u.depends_on) <= done]
            if not ready:
                raise UnitGraphError(f"units depend on each other in a cycle: {_cycle(remaining)}")
            for name in ready:
                done.add(name)
                del remaining[name]

    @property
    def units(self) -> tuple[ResourceUnit, ...]:
        """The units this lifecycle starts."""
        return tuple(self._units.values())

    @property
    def external(self) -> tuple[ResourceUnit, ...]:
        """Overridden providers: resolved at start and pinged, never started or stopped."""
        return tuple(self._external.values())

    @property
    def disabled(self) -> tuple[str, ...]:
        """Declared resources that the settings (or no started dependent) leave off."""
        return tuple(self._disabled)

    def enable_hint(self, name: str) -> str:
        """What to set to switch a disabled resource on ("" when its declaration says nothing)."""
        return self._disabled.get(name, "")

    @property
    def running(self) -> bool:
        """Whether ``start()`` has completed and ``stop()`` has not begun."""
        return bool(self._started) or bool(self._values)

    @property
    def started(self) -> tuple[str, ...]:
        """Names of the running units, in the order they started."""
        return tuple(unit.name for unit in self._started)

    def value(self, name: str) -> Any:
        """The object a started unit yielded (a client, a pool, a backend)."""
        if name not in self._values:
            raise NotStartedError(f"resource {name!r} is not started")
        return self._values[name]

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Start every unit after its dependencies; on a failure stop all and raise."""
        async with self._lock:
            if self.running:
                return
            try:
                failure = await self._start_all()
                if failure is None:
                    failure = await self._resolve_external()
            except BaseException:
                # Cancelled while starting: stop what started (stop errors are logged there).
                await self._stop_all(raise_errors=False)
                raise
            if failure is not None:
                unit, cause = failure
                log.error(
                    "resources.start_failed",
                    resource=unit.name,
                    address=unit.address,
                    error=f"{type(cause).__name__}: {cause}",
                )
                try:
                    await self._stop_all()
                except ResourceStopError as stop_error:
                    raise ResourceStartError(unit.name, unit.address, cause) from stop_error
                raise ResourceStartError(unit.name, unit.address, cause) from cause

    async def _start_all(self) -> tuple[ResourceUnit, BaseException] | None:
        pending = dict(self._units)
        running: dict[asyncio.Task[Any], ResourceUnit] = {}
        failure: tuple[ResourceUnit, BaseException] | None = None
        started_names: set[str] = set()
        try:
            while (pending or running) and failure is None:
                for name, unit in list(pending.items()):
                    if set(unit.depends_on) <= started_names:
                        running[asyncio.create_task(self._start_one(unit))] = unit
                        del pending[name]
                done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    unit = running.pop(task)
                    if task.exception() is None:
                        started_names.add(unit.name)
                    elif failure is None:
                        failure = (unit, task.exception() or RuntimeError("unknown"))
        finally:
            # After a failure (or if we are cancelled), cancel the units still starting and wait
            # for each to settle, so that everything that did start is known and can be stopped
            # (a resource cleans up what it half-made when cancelled, e.g. the embedded Postgres).
            for task in running:
                task.cancel()
            for task, unit in running.items():
                try:
                    await task
                except BaseException as exc:
                    if failure is None and not isinstance(exc, asyncio.CancelledError):
                        failure = (unit, exc)
        return failure

    async def _resolve_external(self) -> tuple[ResourceUnit, BaseException] | None:
        for unit in self._external.values():
            try:
                self._values[unit.name] = await _maybe_await(unit.provider())
            except Exception as exc:
                return unit, exc
        return None

    async def _start_one(self, unit: ResourceUnit) -> None:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(unit.start_timeout_s):
                value = await _maybe_await(unit.provider.init())
        except BaseException:
            # Cancelled or timed out just as the resource came up: it runs, but is not in
            # ``_started``, so nothing else would stop it.
            if unit.provider.initialized:
                await self._stop_orphan(unit)
            raise
        # Started, an async Resource would still hand out a Future on every call, and @inject
        # would gather it in a new task per injection (about 20 us); in sync mode the provider
        # returns the object itself. Reset before shutdown.
        for provider in unit.providers():
            provider.disable_async_mode()
        self._values[unit.name] = value
        self._started.append(unit)
        log.info("resources.started", resource=unit.name, duration_ms=_ms_since(started))

    async def _stop_orphan(self, unit: ResourceUnit) -> None:
        """Stop a unit that came up while its start was being abandoned; log what goes wrong
        (the start's own error is the one raised)."""
        try:
            async with asyncio.timeout(unit.stop_timeout_s):
                await _maybe_await(unit.provider.shutdown())
        except Exception as exc:
            log.error("resources.stop_failed", resource=unit.name, error=repr(exc))  # noqa: TRY400
        else:
            log.info("resources.stopped", resource=unit.name, abandoned_start=True)

    async def stop(self) -> None:
        """Stop started units in reverse order; raise every failure in a ``ResourceStopError``."""
        async with self._lock:
            await self._stop_all()

    async def _stop_all(self, *, raise_errors: bool = True) -> None:
        errors: list[Exception] = []
        failed: list[str] = []
        for name in self._external:
            self._values.pop(name, None)
        while self._started:
            unit = self._started.pop()
            self._values.pop(unit.name, None)
            started = time.perf_counter()
            for provider in unit.providers():
                provider.reset_async_mode()
            try:
                async with asyncio.timeout(unit.stop_timeout_s):
                    await _maybe_await(unit.provider.shutdown())
            except TimeoutError:
                error: Exception = TimeoutError(
                    f"{unit.name} did not stop within {unit.stop_timeout_s} s"
                )
                errors.append(error)
                failed.append(unit.name)
                log.error(  # noqa: TRY400 - the error is raised with the others below
                    "resources.stop_failed", resource=unit.name, error=str(error)
                )
            except Exception as exc:
                errors.append(exc)
                failed.append(unit.name)
                log.error("resources.stop_failed", resource=unit.name, error=repr(exc))  # noqa: TRY400
            else:
                log.info("resources.stopped", resource=unit.name, duration_ms=_ms_since(started))
        if errors and raise_errors:
            names = ", ".join(failed)
            raise ResourceStopError(f"{len(errors)} resource(s) failed to stop: {names}", errors)


def _cycle(remaining: dict[str, ResourceUnit]) -> str:
    """One cycle among ``remaining`` (units none of which can start), as ``a -> b -> a``."""
    path: list[str] = []
    name = next(iter(remaining))
    while name not in path:
        path.append(name)
        name = next(dep for dep in remaining[name].depends_on if dep in remaining)
    return " -> ".join([*path[path.index(name) :], name])
