"""From a container's ``Managed`` declarations to the lifecycle's units, derived, not listed.

- The provider a declaration starts is its provider, or for a ``Selector`` the branch its
  settings select (dependency-injector would start every branch).
- A provider that is overridden (or whose selected branch is) is **external**: the lifecycle
  resolves and pings it, never starts or stops it.
- What a resource depends on is read from the provider graph: the managed resources reachable
  from its arguments, through factories, attribute getters and overrides, following only the
  selected branch of each ``Selector``.
- A resource starts when its settings enable it and it is not ``on_demand``, or when a
  resource that starts depends on it. The rest is reported as disabled.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from dependency_injector import containers, providers

from app.errors import DeclarationError
from containers.declarations import Declared, declared_providers
from containers.lifecycle import Lifecycle, ResourceUnit

__all__ = ["Plan", "build_lifecycle", "plan"]


@dataclass(frozen=True)
class Plan:
    """What the lifecycle starts, what it only pings, and what stays off."""

    units: tuple[ResourceUnit, ...]
    external: tuple[ResourceUnit, ...]
    # name -> what to set to switch it on
    disabled: Mapping[str, str]


@dataclass(frozen=True)
class _Target:
    """A declaration resolved against the settings: the provider to start (or to resolve, if
    external) and the Selectors in front of it, which hand out the same object."""

    declared: Declared
    provider: Any
    selectors: tuple[Any, ...]
    external: bool


def _selected_key(selector: providers.Selector) -> str:
    key_provider: Any = selector.selector
    return str(key_provider())


def _resolve(item: Declared) -> _Target:
    provider = item.provider
    selectors: list[Any] = []
    where = f"{item.container}.{item.declaration.provider}"
    while True:
        if provider.overridden:
            return _Target(item, provider, tuple(selectors), external=True)
        if not isinstance(provider, providers.Selector):
            break
        key = _selected_key(provider)
        branch = provider.providers.get(key)
        if branch is None:
            raise DeclarationError(
                f"{where} selects {key!r}, which is not one of its branches "
                f"({', '.join(sorted(provider.providers))})"
            )
        selectors.append(provider)
        provider = branch
    if not isinstance(provider, providers.Resource):
        raise DeclarationError(
            f"{where} is a {type(provider).__name__}; Managed expects a providers.Resource "
            "or a Selector of Resources (something the lifecycle can start and stop)"
        )
    return _Target(item, provider, tuple(selectors), external=False)


def _reachable(start: Any, units: dict[int, str]) -> Iterator[str]:
    """Names of the managed providers ``start``'s arguments lead to, without walking past them."""
    seen: set[int] = {id(start)}
    stack: list[Any] = list(start.related)
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if id(node) in units:
            yield units[id(node)]
            continue
        if node.overridden:
            stack.append(node.last_overriding)
        elif isinstance(node, providers.Selector):
            stack.append(node.selector)
            branch = node.providers.get(_selected_key(node))
            if branch is not None:
                stack.append(branch)
        else:
            stack.extend(node.related)


def _settings_of(container: containers.Container) -> Any:
    provider = container.providers.get("settings")
    if provider is None:
        raise DeclarationError(
            f"{type(container).__name__} has no 'settings' provider; the lifecycle reads "
            "addresses, timeouts and switches from it"
        )
    return provider()


def plan(container: containers.Container) -> Plan:
    """The units ``container`` starts for its settings; raises ``DeclarationError`` (before
    anything starts) for a declaration that names no provider or cannot be started."""
    settings = _settings_of(container)
    targets = [_resolve(item) for item in declared_providers(container)]
    # Any provider of a managed resource, the declared one or its selected branch, stands for it.
    names: dict[int, str] = {}
    for target in targets:
        name = target.declared.declaration.public_name
        names[id(target.declared.provider)] = name
        names[id(target.provider)] = name
    startable = {t.declared.declaration.public_name: t for t in targets if not t.external}
    depends = {
        name: tuple(dict.fromkeys(_reachable(target.provider, names)))
        for name, target in startable.items()
    }
    needed = _needed(startable, depends, settings)
    firsts = [n for n in needed if startable[n].declared.declaration.first]
    units = []
    for name, target in startable.items():
        if name not in needed:
            continue
        deps = [dep for dep in depends[name] if dep in needed]
        if not target.declared.declaration.first:
            deps = [*firsts, *(dep for dep in deps if dep not in firsts)]
        units.append(_unit(target, tuple(deps), settings))
    # An external unit is resolved through the declared provider: its override, or the
    # override of its selected branch.
    external = tuple(
        _unit(t, (), settings, provider=t.declared.provider) for t in targets if t.external
    )
    disabled = {
        name: target.declared.declaration.enable_hint
        for name, target in startable.items()
        if name not in needed
    }
    return Plan(tuple(units), external, MappingProxyType(disabled))


def _needed(
    startable: dict[str, _Target], depends: dict[str, tuple[str, ...]], settings: Any
) -> set[str]:
    def enabled(name: str) -> bool:
        return startable[name].declared.declaration.enabled_for(settings)

    needed: set[str] = set()
    pending = [
        name
        for name, target in startable.items()
        if enabled(name) and not target.declared.declaration.on_demand
    ]
    while pending:
        name = pending.pop()
        if name in needed:
            continue
        needed.add(name)
        for dep in depends[name]:
            if dep not in startable:
                continue  # external: resolved and pinged, not started
            if not enabled(dep):
                raise DeclarationError(
                    f"{name} needs {dep}, which the settings switch off; enable {dep} or "
                    f"override the provider {name} uses"
                )
            pending.append(dep)
    return needed


def _unit(
    target: _Target, depends_on: tuple[str, ...], settings: Any, *, provider: Any = None
) -> ResourceUnit:
    declaration = target.declared.declaration
    return ResourceUnit(
        declaration.public_name,
        target.provider if provider is None else provider,
        address=declaration.address_for(settings),
        depends_on=depends_on,
        ping=declaration.ping,
        start_timeout_s=declaration.start_timeout_for(settings),
        stop_timeout_s=declaration.stop_timeout_for(settings),
        aliases=target.selectors,
    )


def build_lifecycle(container: containers.Container) -> Lifecycle:
    """The lifecycle of ``container`` for its own settings."""
    result = plan(container)
    return Lifecycle(result.units, external=result.external, disabled=result.disabled)
