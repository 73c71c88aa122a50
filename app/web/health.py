"""``/health/live`` and ``/health/ready``: public, no auth, no rate limit."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from containers import Lifecycle, check_readiness

__all__ = ["router"]

router = APIRouter(prefix="/health", tags=["health"])


@router.get("/live")
async def live() -> dict[str, str]:
    """200 while the process runs."""
    return {"status": "ok"}


@router.get("/ready")
async def ready(request: Request) -> JSONResponse:
    """200 with the per-backend table when every active backend answers; 503 otherwise."""
    lifecycle: Lifecycle = request.app.state.lifecycle
    results = await check_readiness(lifecycle)
    ok = bool(lifecycle.started) and all(result.ok for result in results.values())
    body = {
        "status": "ok" if ok else "error",
        "backends": {name: result.as_json() for name, result in results.items()},
    }
    return JSONResponse(body, status_code=200 if ok else 503)
