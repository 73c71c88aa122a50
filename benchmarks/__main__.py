"""``python -m benchmarks [case ...] [--json FILE] [--quick]``."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import pkgutil
import sys
from pathlib import Path

import benchmarks.cases
from benchmarks.core import CASES, BenchConfig, Measurement


def discover() -> None:
    """Import every case module (each registers its cases in ``CASES``)."""
    for module in pkgutil.iter_modules(benchmarks.cases.__path__):
        try:
            importlib.import_module(f"benchmarks.cases.{module.name}")
        except ModuleNotFoundError as exc:
            # The baselines are optional dependencies of an installed wheel.
            raise SystemExit(
                f"benchmark case {module.name!r} needs the package {exc.name!r}: "
                "pip install 'datalayer[bench]'"
            ) from exc


def fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if value == 0 or abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def print_table(rows: list[Measurement]) -> None:
    header = ("case", "metric", "ours", "baseline", "baseline is", "ratio", "bar", "ok")
    table = [header]
    for row in rows:
        bar = "-" if row.bar is None else f"{row.check} {row.bar:g}"
        ok = {True: "yes", False: "NO", None: "-"}[row.passed]
        table.append(
            (
                row.case,
                f"{row.metric} [{row.unit}]",
                fmt(row.ours),
                fmt(row.baseline),
                row.baseline_name or "-",
                "-" if row.ratio is None else f"{row.ratio:.2f}x",
                bar,
                ok,
            )
        )
    widths = [max(len(str(line[i])) for line in table) for i in range(len(header))]
    for line in table:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(line, widths, strict=True)))


async def run(names: list[str], config: BenchConfig) -> list[Measurement]:
    rows: list[Measurement] = []
    for name in names:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        rows.extend(await CASES[name](config))
    return rows


def main(argv: list[str] | None = None) -> int:
    discover()
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("cases", nargs="*", help=f"cases to run (default all): {sorted(CASES)}")
    parser.add_argument("--json", type=Path, help="also write the results as JSON to this file")
    parser.add_argument("--quick", action="store_true", help="fewer iterations (smoke run)")
    args = parser.parse_args(argv)
    unknown = [name for name in args.cases if name not in CASES]
    if unknown:
        parser.error(f"unknown case(s) {unknown}; known: {sorted(CASES)}")
    names = args.cases or sorted(CASES)
    rows = asyncio.run(run(names, BenchConfig(quick=args.quick)))
    print_table(rows)
    if args.json is not None:
        args.json.write_text(json.dumps([row.as_json() for row in rows], indent=2) + "\n")
    return 1 if any(row.passed is False for row in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
