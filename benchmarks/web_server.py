"""The app under benchmark, plus a plain route that returns the same JSON with no injection.

Run by the ``web`` case as ``python -m benchmarks.web_server PORT``; settings from the env.
The plain route sits under ``/v1`` (same auth and rate-limit guard) and answers with the same
response model (same validation and serialisation) built from a dict: no container, no index.
"""

from __future__ import annotations

import sys
from typing import Any

import uvicorn
from fastapi import APIRouter

from app.web import create_app
from app.web.schemas import VectorOut
from containers import create_container
from settings import load_settings


def main(port: int) -> None:
    app = create_app(create_container(load_settings()))
    cached: dict[str, dict[str, Any]] = {}
    router = APIRouter()

    @router.put("/v1/plain/{name}")
    async def remember(name: str, body: dict[str, Any]) -> dict[str, str]:
        """Keep the GET's JSON to answer with."""
        cached[name] = body
        return {"ok": name}

    @router.get("/v1/plain/{name}")
    async def plain(name: str) -> VectorOut:
        """The same JSON as the injected route, through the same response model."""
        return VectorOut.model_validate(cached[name])

    app.include_router(router)
    uvicorn.run(app, host="127.0.0.1", port=port, log_config=None, access_log=False)


if __name__ == "__main__":
    main(int(sys.argv[1]))
