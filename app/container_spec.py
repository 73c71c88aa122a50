"""``--container package.module:factory``: the user's container for ``python -m app``."""

from __future__ import annotations

import importlib
from typing import Any, cast

from dependency_injector import containers

from app.errors import ConfigurationError
from containers import Container, create_container

__all__ = ["load_container"]


def _import(spec: str) -> Any:
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise ConfigurationError(f"--container must be 'package.module:factory', got {spec!r}")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # any failure while importing the user's module is theirs to fix
        raise ConfigurationError(
            f"--container {spec!r}: module {module_name!r} does not import "
            f"({type(exc).__name__}: {exc})"
        ) from exc
    target: Any = module
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise ConfigurationError(
                f"--container {spec!r}: {module_name} has no attribute {attribute!r}"
            )
        target = getattr(target, part)
    return target


def load_container(spec: str | None) -> Container:
    """The container ``spec`` names (a container class, or a function of no arguments that
    returns a container), or a new ``Container`` when ``spec`` is None."""
    if spec is None:
        return create_container()
    target = _import(spec)
    try:
        container = target()
    except TypeError as exc:
        raise ConfigurationError(
            f"--container {spec!r} must be a container class or a function of no arguments "
            f"returning a container; calling it failed: {exc}"
        ) from exc
    if not isinstance(container, containers.Container) or not hasattr(container, "settings"):
        raise ConfigurationError(
            f"--container {spec!r} returned {type(container).__name__}, expected an instance "
            "of containers.Container or of a subclass of it"
        )
    return cast(Container, container)
