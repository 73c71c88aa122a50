"""The package's public API: ``__all__`` complete, every name importable, aliases intact."""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys

import pytest

import app
import app.errors
import settings


def test_all_names_import() -> None:
    """Every name in app.__all__ resolves to a real object."""
    for name in app.__all__:
        assert getattr(app, name) is not None, name


def test_all_lists_every_error_type() -> None:
    """Every DataLayerError subclass defined in app.errors is exported from app."""
    errors = {
        name
        for name, obj in inspect.getmembers(app.errors, inspect.isclass)
        if issubclass(obj, app.errors.DataLayerError) and obj.__module__ == "app.errors"
    }
    assert errors <= set(app.__all__)
    assert set(app.errors.__all__) == errors


def test_original_config_names_are_the_settings_models() -> None:
    """DataLayerConfig and the section aliases are the settings models under their old names."""
    assert app.DataLayerConfig is settings.Settings
    assert app.RedisConfig is settings.RedisSettings
    assert app.PostgresConfig is settings.PostgresSettings
    assert app.ElasticsearchConfig is settings.ElasticsearchSettings
    assert app.FaissConfig is settings.FaissSettings


def test_unknown_attribute_is_an_attribute_error() -> None:
    """A name that is not exported raises AttributeError, as for any module."""
    module = importlib.import_module("app")
    with pytest.raises(AttributeError, match="NoSuchThing"):
        module.NoSuchThing  # noqa: B018


@pytest.mark.parametrize("first", ["settings", "containers", "app.facade", "app.web", "app"])
def test_any_package_can_be_imported_first(first: str) -> None:
    """Each top-level package imports cleanly in a fresh interpreter (no import cycle)."""
    code = f"import {first}; import app; app.DataLayer"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
