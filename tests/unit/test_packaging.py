"""The wheel: what it ships, and that what it ships imports only what it declares."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
OWN_PACKAGES = frozenset({"app", "containers", "settings", "benchmarks"})
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_names(requirements: list[str]) -> set[str]:
    names = set()
    for requirement in requirements:
        found = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
        assert found is not None, requirement
        names.add(_canonical(found.group()))
    return names


def _imported_distributions(package: str) -> dict[str, set[str]]:
    """Distribution -> the files of ``package`` that import it (stdlib and own code left out)."""
    providers = packages_distributions()
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                top = module.partition(".")[0]
                if top in sys.stdlib_module_names or top in OWN_PACKAGES:
                    continue
                for distribution in providers.get(top, [top]):
                    found.setdefault(_canonical(distribution), set()).add(
                        str(path.relative_to(ROOT))
                    )
    return found


def test_benchmarks_import_only_runtime_and_bench_dependencies() -> None:
    """`python -m benchmarks` from an installed wheel: every third-party import of the
    benchmarks is a runtime dependency or in the `bench` extra (dev tools are not there)."""
    project = PYPROJECT["project"]
    declared = _requirement_names(project["dependencies"])
    declared |= _requirement_names(project["optional-dependencies"]["bench"])
    undeclared = {
        distribution: files
        for distribution, files in _imported_distributions("benchmarks").items()
        if distribution not in declared
    }
    assert undeclared == {}


@pytest.mark.parametrize("package", ["app", "containers", "settings"])
def test_runtime_packages_import_only_runtime_dependencies(package: str) -> None:
    """Every third-party import of the installed packages is a declared runtime dependency,
    not one that only happens to come along with another."""
    declared = _requirement_names(PYPROJECT["project"]["dependencies"])
    undeclared = {
        distribution: files
        for distribution, files in _imported_distributions(package).items()
        if distribution not in declared
    }
    assert undeclared == {}


def test_dev_extra_includes_the_bench_extra() -> None:
    """Installing `.[dev]` (as CI does) brings what the benchmarks need."""
    assert "datalayer[bench]" in PYPROJECT["project"]["optional-dependencies"]["dev"]


@pytest.mark.slow
def test_the_wheel_ships_benchmarks_lua_scripts_and_py_typed(tmp_path: Path) -> None:
    """A wheel built from the project's files holds the benchmark runner and its cases, the
    state backend's Lua scripts and a py.typed marker for each typed package."""
    source = tmp_path / "source"  # a copy: building writes build/ beside the sources
    for name in ("app", "containers", "settings", "benchmarks"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), "."],
        cwd=source,
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = tmp_path.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    cases = {path.name for path in (ROOT / "benchmarks" / "cases").glob("*.py")}
    assert {"benchmarks/__main__.py", "benchmarks/core.py"} <= names
    assert {f"benchmarks/cases/{case}" for case in cases} <= names
    scripts = {path.name for path in (ROOT / "app" / "state").glob("*.lua")}
    assert len(scripts) == 5
    assert {f"app/state/{script}" for script in scripts} <= names
    assert {"app/py.typed", "containers/py.typed", "settings/py.typed"} <= names
    assert not any(name.startswith("tests/") for name in names)
