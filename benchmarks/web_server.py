"""The app under benchmark, plus a plain route that returns the same JSON with no injection.

Run by the ``web`` case as ``python -m benchmarks.web_server PORT``; settings from the env.
The plain route sits under ``/v1`` so it pays the same auth and rate-limit guard.
"""

from __future__ import annotations

import sys

import uvicorn
from fastapi import APIRouter
from fastapi.responses import Response

from app.web import create_app
from containers import create_container
from settings import load_settings

PLAIN_BODY = b""


def main(port: int) -> None:
    app = create_app(create_container(load_settings()))
    cached: dict[str, bytes] = {}
    router = APIRouter()

    @router.put("/v1/plain/{name}")
    async def remember(name: str, body: dict[str, object]) -> dict[str, str]:
        """Store the bytes the plain route will answer with (the GET's JSON, verbatim)."""
        import json

        cached[name] = json.dumps(body, separators=(",", ":")).encode()
        return {"ok": name}

    @router.get("/v1/plain/{name}")
    async def plain(name: str) -> Response:
        """The same JSON as the injected route, from a dict: no container, no index."""
        return Response(cached[name], media_type="application/json")

    app.include_router(router)
    uvicorn.run(app, host="127.0.0.1", port=port, log_config=None, access_log=False)


if __name__ == "__main__":
    main(int(sys.argv[1]))
