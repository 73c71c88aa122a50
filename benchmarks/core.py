"""What a benchmark case returns, and the registry the runner reads."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

__all__ = [
    "CASES",
    "BenchConfig",
    "Measurement",
    "case",
    "percentile",
]


@dataclass(frozen=True)
class BenchConfig:
    """Where the services are and how long to measure."""

    redis_url: str = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    postgres_dsn: str = os.environ.get(
        "TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test"
    )
    rabbitmq_url: str = os.environ.get("TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")
    quick: bool = False


@dataclass(frozen=True)
class Measurement:
    """One figure of ours beside a raw baseline measured in the same run.

    ``ratio`` is ``ours / baseline``; ``bar`` is the acceptance bar on the ratio (or on
    ``ours`` when there is no baseline), compared with ``check``.
    """

    case: str
    metric: str
    unit: str
    ours: float
    baseline: float | None = None
    baseline_name: str = ""
    check: Literal[">=", "<="] = ">="
    bar: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        if self.baseline is None or self.baseline == 0:
            return None
        return self.ours / self.baseline

    @property
    def passed(self) -> bool | None:
        if self.bar is None:
            return None
        value = self.ours if self.baseline is None else self.ratio
        if value is None:
            return False
        return value >= self.bar if self.check == ">=" else value <= self.bar

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "ratio": self.ratio, "passed": self.passed}


CaseFn = Callable[[BenchConfig], Awaitable[list[Measurement]]]
CASES: dict[str, CaseFn] = {}


def case(name: str) -> Callable[[CaseFn], CaseFn]:
    """Register a benchmark case under ``name`` (``python -m benchmarks name``)."""

    def register(fn: CaseFn) -> CaseFn:
        if name in CASES:
            raise ValueError(f"benchmark case {name!r} is registered twice")
        CASES[name] = fn
        return fn

    return register


def percentile(samples: list[float], fraction: float) -> float:
    """The ``fraction`` quantile (0..1) of ``samples`` by nearest rank."""
    if not samples:
        raise ValueError("percentile of no samples")
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]
