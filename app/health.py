"""``Health``: the aggregate answer of ``DataLayer.health()``, built from the readiness results
that ``/health/ready`` and ``python -m app check`` report too."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

from containers.readiness import Readiness

__all__ = ["COMPATIBLE_ALIASES", "DISABLED", "OK", "Health", "health_from_readiness"]

OK: Final = "ok"
DISABLED: Final = "disabled"
# Keys of the original design's health() that are now another resource's name: the same
# result, reported under both.
COMPATIBLE_ALIASES: Final = MappingProxyType({"faiss": "vectors"})


@dataclass(frozen=True)
class Health:
    """Per backend ``"ok"``, ``"disabled"`` or ``"error: <reason>"``, and ping latency in ms.

    ``ok`` is true when no backend reports an error (disabled ones do not count against it).
    """

    ok: bool
    details: Mapping[str, str]
    latency_ms: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "details", MappingProxyType(dict(self.details)))
        object.__setattr__(self, "latency_ms", MappingProxyType(dict(self.latency_ms)))


def _detail(result: Readiness) -> str:
    if result.status == "error":
        return f"error: {result.error}"
    return OK if result.status == "ok" else DISABLED


def health_from_readiness(results: Mapping[str, Readiness]) -> Health:
    """``Health`` of the readiness results, with the compatible aliases added."""
    details = {name: _detail(result) for name, result in results.items()}
    latency = {
        name: result.latency_ms for name, result in results.items() if result.status != DISABLED
    }
    for alias, name in COMPATIBLE_ALIASES.items():
        if name in details:
            details[alias] = details[name]
            if name in latency:
                latency[alias] = latency[name]
    ok = all(result.ok for result in results.values())
    return Health(ok=ok, details=details, latency_ms=latency)
