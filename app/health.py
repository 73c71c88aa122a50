"""``Health``: the aggregate answer of ``DataLayer.health()``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

__all__ = ["BACKENDS", "DISABLED", "OK", "Health"]

BACKENDS: Final = ("redis", "postgres", "elasticsearch", "faiss", "rabbitmq", "state", "events")
OK: Final = "ok"
DISABLED: Final = "disabled"


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
