"""The app under benchmark, plus a plain route that returns the same JSON with no injection.

Run by the ``web`` case as ``python -m benchmarks.web_server PORT``; settings from the env.
Two routes to compare the injected ``GET /v1/vectors/{namespace}/{id}`` with, both under
``/v1`` (same auth and rate-limit guard), same path parameters, same response model:
``/v1/direct/...`` does the same work with the index taken from the lifecycle (the same
endpoint without injection); ``/v1/plain/...`` answers from a dict: no container, no index.
"""

from __future__ import annotations

import sys
from typing import Any

import uvicorn
from fastapi import APIRouter, HTTPException

from app.web import create_app
from app.web.params import Namespace, VectorId
from app.web.routes.vectors import vector_out
from app.web.schemas import VectorOut
from containers import create_container
from settings import load_settings


def main(port: int) -> None:
    app = create_app(create_container(load_settings()), freeze_gc=True)  # as `app serve`
    cached: dict[tuple[str, str], VectorOut] = {}
    router = APIRouter()

    @router.put("/v1/plain/{namespace}/{vector_id}")
    async def remember(namespace: Namespace, vector_id: VectorId, body: dict[str, Any]) -> None:
        """Keep the GET's JSON to answer with."""
        cached[(namespace, vector_id)] = VectorOut.model_validate(body)

    @router.get("/v1/plain/{namespace}/{vector_id}")
    async def plain(namespace: Namespace, vector_id: VectorId) -> VectorOut:
        """The same JSON as the injected route: same path parameters, same response model."""
        return cached[(namespace, vector_id)]

    @router.get("/v1/direct/{namespace}/{vector_id}")
    async def direct(namespace: Namespace, vector_id: VectorId) -> VectorOut:
        """The injected route's work with the index taken from the lifecycle: no injection."""
        records = await app.state.lifecycle.value("vectors").get(namespace, [vector_id])
        if not records:
            raise HTTPException(404)
        return vector_out(namespace, records[0])

    app.include_router(router)
    uvicorn.run(app, host="127.0.0.1", port=port, log_config=None, access_log=False)


if __name__ == "__main__":
    main(int(sys.argv[1]))
