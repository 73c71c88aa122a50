"""A protocol-level Elasticsearch fake served over HTTP on loopback.

It speaks just enough of the 8.x REST API for the client and our tests: the product header the
client checks, ``GET /`` and ``HEAD /``, documents (index/get/delete), ``_refresh`` and a
``_search`` that supports ``match_all`` and ``term``/``match`` on top-level fields. It is used
when ``ELASTICSEARCH_URL`` is not set; with it set, the tests run against the real server.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

__all__ = ["FakeElasticsearch"]

HEADERS = {"X-Elastic-Product": "Elasticsearch"}
CONTENT_TYPE = "application/vnd.elasticsearch+json;compatible-with=8"


def _reply(body: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=json.dumps(body).encode(),
        status=status,
        headers={**HEADERS, "Content-Type": CONTENT_TYPE},
    )


class FakeElasticsearch:
    """``async with FakeElasticsearch() as url`` serves the fake until the block ends."""

    def __init__(self) -> None:
        self.indices: dict[str, dict[str, dict[str, Any]]] = {}
        self.requests = 0
        self._runner: web.AppRunner | None = None

    async def __aenter__(self) -> str:
        app = web.Application()
        app.router.add_route("GET", "/", self._info)
        app.router.add_route("HEAD", "/", self._head)
        app.router.add_route("PUT", "/{index}/_doc/{id}", self._index)
        app.router.add_route("POST", "/{index}/_doc/{id}", self._index)
        app.router.add_route("GET", "/{index}/_doc/{id}", self._get)
        app.router.add_route("DELETE", "/{index}/_doc/{id}", self._delete)
        app.router.add_route("POST", "/{index}/_refresh", self._refresh)
        app.router.add_route("POST", "/{index}/_search", self._search)
        app.router.add_route("GET", "/{index}/_search", self._search)
        app.router.add_route("DELETE", "/{index}", self._delete_index)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        return f"http://127.0.0.1:{port}"

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _info(self, _request: web.Request) -> web.Response:
        self.requests += 1
        return _reply(
            {
                "name": "fake",
                "cluster_name": "fake-cluster",
                "version": {"number": "8.19.0", "build_flavor": "default"},
                "tagline": "You Know, for Search",
            }
        )

    async def _head(self, _request: web.Request) -> web.Response:
        self.requests += 1
        return web.Response(status=200, headers=HEADERS)

    async def _index(self, request: web.Request) -> web.Response:
        self.requests += 1
        index, doc_id = request.match_info["index"], request.match_info["id"]
        docs = self.indices.setdefault(index, {})
        result = "updated" if doc_id in docs else "created"
        docs[doc_id] = await request.json()
        status = 200 if result == "updated" else 201
        return _reply({"_index": index, "_id": doc_id, "result": result, "_version": 1}, status)

    async def _get(self, request: web.Request) -> web.Response:
        self.requests += 1
        index, doc_id = request.match_info["index"], request.match_info["id"]
        doc = self.indices.get(index, {}).get(doc_id)
        if doc is None:
            return _reply({"_index": index, "_id": doc_id, "found": False}, 404)
        return _reply({"_index": index, "_id": doc_id, "found": True, "_source": doc})

    async def _delete(self, request: web.Request) -> web.Response:
        self.requests += 1
        index, doc_id = request.match_info["index"], request.match_info["id"]
        found = self.indices.get(index, {}).pop(doc_id, None) is not None
        result = "deleted" if found else "not_found"
        return _reply({"_index": index, "_id": doc_id, "result": result}, 200 if found else 404)

    async def _delete_index(self, request: web.Request) -> web.Response:
        self.requests += 1
        self.indices.pop(request.match_info["index"], None)
        return _reply({"acknowledged": True})

    async def _refresh(self, _request: web.Request) -> web.Response:
        self.requests += 1
        return _reply({"_shards": {"total": 1, "successful": 1, "failed": 0}})

    async def _search(self, request: web.Request) -> web.Response:
        self.requests += 1
        index = request.match_info["index"]
        body = await request.json() if request.can_read_body else {}
        query = body.get("query", {"match_all": {}})
        docs = self.indices.get(index, {})
        hits = [
            {"_index": index, "_id": doc_id, "_score": 1.0, "_source": doc}
            for doc_id, doc in docs.items()
            if _matches(doc, query)
        ]
        return _reply(
            {
                "took": 1,
                "timed_out": False,
                "hits": {"total": {"value": len(hits), "relation": "eq"}, "hits": hits},
            }
        )


def _matches(doc: dict[str, Any], query: dict[str, Any]) -> bool:
    if "match_all" in query:
        return True
    for kind in ("term", "match"):
        if kind in query:
            ((field, wanted),) = query[kind].items()
            if isinstance(wanted, dict):
                wanted = wanted.get("value", wanted.get("query"))
            return bool(doc.get(field) == wanted)
    raise ValueError(f"the fake supports match_all, term and match; got {sorted(query)}")
