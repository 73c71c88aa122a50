"""``Managed``: how the lifecycle runs one provider, declared beside that provider.

A declarative container says which of its providers the lifecycle starts, stops and pings by
placing a ``Managed`` next to the provider, naming it by its attribute::

    class StorageContainer(containers.DeclarativeContainer):
        settings = providers.Dependency(instance_of=Settings)

        bucket = providers.Resource(open_bucket, settings.provided.storage)
        bucket_lifecycle = Managed("bucket", ping=ping_bucket, address=bucket_address)

Everything else is derived from the container itself (``containers.planning``): what a
resource depends on (the provider graph), which branch of a ``Selector`` is active (the
settings), and which providers are overridden (those are external: pinged, never started).
Subclasses inherit their parents' declarations; a declaration in a nested container
(``providers.Container``) counts as well.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeAlias

from dependency_injector import containers, providers

from app.errors import DeclarationError

__all__ = ["Declared", "Managed", "Ping", "declared_providers", "ping_method"]

Ping: TypeAlias = Callable[[Any], Awaitable[object]]

DEFAULT_START_TIMEOUT_S = 30.0
DEFAULT_STOP_TIMEOUT_S = 10.0


async def ping_method(target: Any) -> object:
    """The ping of our own components (state backend, event bus, vector index): ``.ping()``."""
    result: object = await target.ping()
    return result


def _evaluate(value: object, settings: Any) -> Any:
    return value(settings) if callable(value) else value


@dataclass(frozen=True)
class Managed:
    """The lifecycle's view of one provider of the container this is declared in.

    ``provider``: the attribute name of a ``providers.Resource`` (or of a ``Selector`` whose
    branches are Resources) in the same container. ``name``: the public name in readiness,
    health and errors (default: ``provider``). ``ping``: called with the started object.
    ``address``, ``start_timeout_s``, ``stop_timeout_s``: values, or functions of the
    settings. ``enabled``: a function of the settings; when it returns false the resource is
    not started and reports as disabled. ``on_demand``: started only when a started resource
    depends on it (a client whose only users may be overridden or switched off). ``first``:
    started before, and stopped after, every resource not marked ``first`` (logging, so that
    the others' start and stop are logged as configured). ``enable_hint``: what to set to
    switch it on, for the error a caller gets when it is off.
    """

    provider: str
    name: str | None = None
    ping: Ping | None = None
    address: str | Callable[[Any], str] = "-"
    start_timeout_s: float | Callable[[Any], float] = DEFAULT_START_TIMEOUT_S
    stop_timeout_s: float | Callable[[Any], float] = DEFAULT_STOP_TIMEOUT_S
    enabled: Callable[[Any], bool] | None = None
    on_demand: bool = False
    first: bool = False
    enable_hint: str = ""

    @property
    def public_name(self) -> str:
        return self.name or self.provider

    def address_for(self, settings: Any) -> str:
        return str(_evaluate(self.address, settings))

    def start_timeout_for(self, settings: Any) -> float:
        return float(_evaluate(self.start_timeout_s, settings))

    def stop_timeout_for(self, settings: Any) -> float:
        return float(_evaluate(self.stop_timeout_s, settings))

    def enabled_for(self, settings: Any) -> bool:
        return True if self.enabled is None else bool(self.enabled(settings))


@dataclass(frozen=True)
class Declared:
    """A declaration with the provider it names and where it was declared (for messages)."""

    declaration: Managed
    provider: Any
    container: str


def _container_name(container: Any) -> str:
    parent = getattr(container, "declarative_parent", None)
    return parent.__name__ if parent is not None else type(container).__name__


def _class_declarations(container: Any) -> Iterator[Managed]:
    parent = getattr(container, "declarative_parent", None)
    if parent is None:
        return
    seen: set[str] = set()
    for klass in parent.__mro__:
        for attribute, value in vars(klass).items():
            if isinstance(value, Managed) and attribute not in seen:
                seen.add(attribute)  # a subclass may redeclare under the same attribute
                yield value


def _nested(container: Any) -> Iterator[Any]:
    for provider in container.providers.values():
        if isinstance(provider, providers.Container):
            yield provider.container


def declared_providers(container: containers.Container) -> list[Declared]:
    """Every ``Managed`` in ``container`` and its nested containers, with its provider.

    Raises ``DeclarationError`` for a declaration naming a provider its container does not
    have, and for two declarations of one public name.
    """
    found: list[Declared] = []
    visited: set[int] = set()
    pending: list[Any] = [container]
    while pending:
        current = pending.pop(0)
        if id(current) in visited:
            continue
        visited.add(id(current))
        where = _container_name(current)
        for declaration in _class_declarations(current):
            provider = current.providers.get(declaration.provider)
            if provider is None:
                known = ", ".join(sorted(current.providers)) or "none"
                raise DeclarationError(
                    f"{where} declares Managed({declaration.provider!r}), but {where} has no "
                    f"provider named {declaration.provider!r} (its providers: {known})"
                )
            found.append(Declared(declaration, provider, where))
        pending.extend(_nested(current))
    _check_unique(found)
    return found


def _check_unique(found: list[Declared]) -> None:
    by_name: dict[str, Declared] = {}
    by_provider: dict[int, Declared] = {}
    for item in found:
        name = item.declaration.public_name
        if name in by_name:
            other = by_name[name]
            raise DeclarationError(
                f"two resources are named {name!r}: {other.container}.{other.declaration.provider}"
                f" and {item.container}.{item.declaration.provider}; give one another name="
            )
        if id(item.provider) in by_provider:
            other = by_provider[id(item.provider)]
            raise DeclarationError(
                f"{item.container}.{item.declaration.provider} is declared twice, as "
                f"{other.declaration.public_name!r} and {name!r}"
            )
        by_name[name] = item
        by_provider[id(item.provider)] = item
