"""``/api/{agents,goals,plans,tasks,documents}``: the original service's entity routes, built
from the entity registry (one set of routes per declared type).

Responses carry ``ETag: "<version>"``; ``If-Match`` on PUT, PATCH and DELETE makes the change
conditional (a moved-on entity is a 409 with the current version). Lists are keyset pages:
pass ``next_cursor`` back as ``cursor``.

No ``from __future__ import annotations`` here: the handlers are made per entity type, and
FastAPI must see their body and response models as objects, not as names to look up.
"""

from enum import Enum
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from pydantic import BaseModel, create_model

from app.entities.declaration import EntityType
from app.entities.records import ChangeContext
from app.entities.registry import EntityRegistry
from app.entities.store import MAX_PAGE
from app.services import entities as service
from app.web.errors import ERROR_RESPONSES, ApiError, ErrorBody
from app.web.json_route import JSONRoute

__all__ = ["build_router", "change_context_of", "expected_version", "no_unknown_query"]

CORRELATION_HEADER = "x-correlation-id"
MAX_CORRELATION_ID = 128


def _described(description: str) -> dict[str, Any]:
    return {"model": ErrorBody, "description": description}


Responses = dict[int | str, dict[str, Any]]
NOT_FOUND: Responses = {404: _described("no such entity (or it was deleted)")}
CONFLICT: Responses = {409: _described("If-Match names a version the entity has moved past")}
HAS_CHILDREN: Responses = {409: _described("the entity still has children (named in details)")}

IfMatch = Annotated[
    str | None,
    Header(
        description='Make the change conditional on this version, e.g. "3" (the ETag)',
        max_length=64,
    ),
]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description="entities per page")]
Cursor = Annotated[
    str | None, Query(max_length=512, description="next_cursor of the previous page")
]


def expected_version(if_match: str | None) -> int | None:
    """The version an ``If-Match`` header names (``None`` for no header or ``*``)."""
    if if_match is None or if_match.strip() == "*":
        return None
    text = if_match.strip().removeprefix("W/").strip().strip('"')
    if not text.isdigit() or len(text) > 18:
        raise ApiError(
            422,
            "invalid_request",
            f'If-Match must be one version as the ETag gives it (e.g. "3") or *, got {if_match!r}',
        )
    return int(text)


def change_context_of(request: Request) -> ChangeContext:
    """D11: the request id and caller the guard recorded; the caller's correlation id if it
    sent a usable one, else the request id."""
    state = request.scope.get("state", {})
    request_id = state.get("request_id")
    given = request.headers.get(CORRELATION_HEADER, "")
    usable = 0 < len(given) <= MAX_CORRELATION_ID and given.isascii() and given.isprintable()
    return ChangeContext(
        request_id=request_id,
        caller=state.get("caller"),
        correlation_id=given if usable else request_id,
    )


async def no_unknown_query(request: Request) -> None:
    """Refuse query parameters the route does not take (a misspelt ``limt`` would otherwise
    be ignored silently, and the listing would not be the one asked for)."""
    if not request.query_params:
        return
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    known = {param.alias for param in dependant.query_params} if dependant else set()
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        raise ApiError(
            422,
            "invalid_request",
            f"unknown query parameters {unknown}; this route takes {sorted(known) or 'none'}",
        )


def _tag(response: Response, version: int) -> None:
    response.headers["ETag"] = f'"{version}"'


def _page_model(entity: EntityType) -> type[BaseModel]:
    return create_model(
        f"{entity.out_model.__name__.removesuffix('Out')}Page",
        items=(list[entity.out_model], ...),  # type: ignore[name-defined]
        next_cursor=(str | None, None),
    )


def _add_entity_routes(router: APIRouter, entity: EntityType) -> None:
    name, path = entity.name, f"/{entity.table}"
    fields_model, patch_model, out_model = entity.fields, entity.patch_model, entity.out_model
    page_model = _page_model(entity)
    tags: list[str | Enum] = [entity.table]

    async def list_(limit: Limit = 50, cursor: Cursor = None) -> Any:
        page = await service.list_entities(name, limit=limit, cursor=cursor)
        return {"items": page.items, "next_cursor": page.next_cursor}

    async def create(body: fields_model, request: Request, response: Response) -> Any:  # type: ignore[valid-type]
        written = await service.create_entity(name, dict(body), context=change_context_of(request))
        _tag(response, written.entity.version)  # type: ignore[attr-defined]
        response.headers["Location"] = f"/api{path}/{written.entity.id}"  # type: ignore[attr-defined]
        return written.entity

    async def get(entity_id: UUID, response: Response) -> Any:
        found = await service.get_entity(name, entity_id)
        _tag(response, found.version)  # type: ignore[attr-defined]
        return found

    async def replace(
        entity_id: UUID,
        body: fields_model,  # type: ignore[valid-type]
        request: Request,
        response: Response,
        if_match: IfMatch = None,
    ) -> Any:
        written = await service.update_entity(
            name,
            entity_id,
            dict(body),
            expected_version=expected_version(if_match),
            replace=True,
            context=change_context_of(request),
        )
        _tag(response, written.entity.version)  # type: ignore[attr-defined]
        return written.entity

    async def patch(
        entity_id: UUID,
        body: patch_model,  # type: ignore[valid-type]
        request: Request,
        response: Response,
        if_match: IfMatch = None,
    ) -> Any:
        written = await service.update_entity(
            name,
            entity_id,
            body.model_dump(exclude_unset=True),  # type: ignore[attr-defined]
            expected_version=expected_version(if_match),
            context=change_context_of(request),
        )
        _tag(response, written.entity.version)  # type: ignore[attr-defined]
        return written.entity

    async def delete(entity_id: UUID, request: Request, if_match: IfMatch = None) -> Response:
        await service.delete_entity(
            name,
            entity_id,
            expected_version=expected_version(if_match),
            context=change_context_of(request),
        )
        return Response(status_code=204)

    one = f"{path}/{{entity_id}}"
    router.add_api_route(
        path, list_, methods=["GET"], response_model=page_model, tags=tags,
        summary=f"List {entity.table} (oldest first, keyset pages)",
    )  # fmt: skip
    router.add_api_route(
        path, create, methods=["POST"], status_code=201, response_model=out_model, tags=tags,
        responses=NOT_FOUND, summary=f"Create a {name}",
    )  # fmt: skip
    router.add_api_route(
        one, get, methods=["GET"], response_model=out_model, tags=tags, responses=NOT_FOUND,
        summary=f"Get a {name}",
    )  # fmt: skip
    router.add_api_route(
        one, replace, methods=["PUT"], response_model=out_model, tags=tags,
        responses={**NOT_FOUND, **CONFLICT}, summary=f"Replace a {name}'s fields",
    )  # fmt: skip
    router.add_api_route(
        one, patch, methods=["PATCH"], response_model=out_model, tags=tags,
        responses={**NOT_FOUND, **CONFLICT}, summary=f"Change some of a {name}'s fields",
    )  # fmt: skip
    router.add_api_route(
        one, delete, methods=["DELETE"], status_code=204, tags=tags,
        responses={**NOT_FOUND, **CONFLICT, **HAS_CHILDREN},
        summary=f"Delete a {name} (refused while it has children)",
    )  # fmt: skip


def _add_children_route(
    router: APIRouter, parent: EntityType, child: EntityType, field: str
) -> None:
    child_name = child.name

    async def children(entity_id: UUID, limit: Limit = 50, cursor: Cursor = None) -> Any:
        await service.get_entity(parent.name, entity_id)  # 404 for an unknown parent
        page = await service.list_entities(
            child_name, limit=limit, cursor=cursor, parent=(field, entity_id)
        )
        return {"items": page.items, "next_cursor": page.next_cursor}

    router.add_api_route(
        f"/{parent.table}/{{entity_id}}/{child.table}", children, methods=["GET"],
        response_model=_page_model(child), tags=[str(parent.table)], responses=NOT_FOUND,
        summary=f"List the {child.table} of a {parent.name}",
    )  # fmt: skip


def build_router(registry: EntityRegistry) -> APIRouter:
    """The routes of every entity type in ``registry``, under ``/api``."""
    router = APIRouter(
        prefix="/api",
        responses=ERROR_RESPONSES,
        route_class=JSONRoute,
        dependencies=[Depends(no_unknown_query)],
    )
    for entity in registry:
        _add_entity_routes(router, entity)
    for parent in registry:
        for child, field in registry.children(parent):
            _add_children_route(router, parent, child, field)
    return router
