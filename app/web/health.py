"""``/health/live`` and ``/health/ready``: public, no auth, no rate limit.

Public, so they say whether each backend answers and how fast, never where it is or what it
replied: addresses, paths and errors go to the log (``python -m app check`` prints them).
Both answer ``HEAD`` too, as load balancers' probes may ask.
"""

from __future__ import annotations

from collections.abc import Mapping

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from containers import Lifecycle, check_readiness

__all__ = ["router"]

log = structlog.get_logger(__name__)

router = APIRouter(prefix="/health", tags=["health"])


@router.get("/live")
async def live() -> dict[str, str]:
    """200 while the process runs."""
    return {"status": "ok"}


@router.get("/ready")
async def ready(request: Request) -> JSONResponse:
    """200 with each backend's status and ping latency when all answer; 503 otherwise.

    The same results as ``DataLayer.health()``: every started or overridden resource with a
    ping, and the switched-off ones as ``disabled``.
    """
    lifecycle: Lifecycle = request.app.state.lifecycle
    results = await check_readiness(lifecycle)
    for result in results.values():
        if not result.ok:
            log.warning("api.backend_not_ready", **result.as_json(), resource=result.resource)
    ok = lifecycle.running and all(result.ok for result in results.values())
    body = {
        "status": "ok" if ok else "error",
        "backends": {
            name: {"status": result.status, "latency_ms": result.latency_ms}
            | ({"details": _public(result.details)} if result.details else {})
            for name, result in results.items()
        },
    }
    return JSONResponse(body, status_code=200 if ok else 503)


def _public(details: Mapping[str, object]) -> dict[str, object]:
    """Only the numbers and flags of a backend's details (the entities' positions and lags):
    their texts (a consumer's last error) go to the log and to ``check``, not to anyone."""
    kept: dict[str, object] = {}
    for key, value in details.items():
        if isinstance(value, Mapping):
            kept[key] = _public(value)
        elif isinstance(value, bool | int | float):
            kept[key] = value
    return kept


router.add_api_route("/live", live, methods=["HEAD"], include_in_schema=False)
router.add_api_route("/ready", ready, methods=["HEAD"], include_in_schema=False)
