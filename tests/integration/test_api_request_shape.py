"""Requests whose shape, not size, is hostile: invalid escapes in a path, very deep JSON."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Fakes, serve_app
from tests.integration.test_api import assert_error

pytestmark = pytest.mark.integration

BODY = {"vector": [0.1, 0.2, 0.3, 0.4]}


@pytest.mark.parametrize("escaped_id", ["a%FF", "a%FE", "a%C3", "%ED%A0%80"])
async def test_a_path_with_an_invalid_utf8_escape_is_refused(
    overridden_container: Any, fakes: Fakes, escaped_id: str
) -> None:
    """A percent-escape that is not UTF-8 is a 422 naming the path, and nothing is stored:
    decoded leniently, different URLs became the same id (a replacement character)."""
    async with serve_app(overridden_container) as api:
        response = await api.put(f"/v1/vectors/docs/{escaped_id}", json=BODY)
    error = assert_error(response, 422, "invalid_path")
    assert escaped_id in error["message"]
    assert fakes.vectors.data == {}


async def test_a_valid_utf8_escape_names_its_character(
    overridden_container: Any, fakes: Fakes
) -> None:
    """A percent-escaped UTF-8 sequence still decodes to its character (the check refuses only
    escapes that are not UTF-8)."""
    async with serve_app(overridden_container) as api:
        response = await api.put("/v1/vectors/docs/caf%C3%A9%2Fmenu", json=BODY)
    assert response.status_code == 200, response.text
    assert set(fakes.vectors.data["docs"]) == {"café/menu"}


@pytest.mark.parametrize("depth", [300, 1_000, 100_000])
async def test_deeply_nested_json_is_a_422_like_other_malformed_bodies(
    overridden_container: Any, fakes: Fakes, depth: int
) -> None:
    """JSON nested deeper than the parsers go is refused with the 422 of malformed bodies
    (not a 400), naming the nesting."""
    body = '{"vector": [0.1, 0.2, 0.3, 0.4], "metadata": {"deep": ' + "[" * depth
    body += "]" * depth + "}}"
    async with serve_app(overridden_container) as api:
        response = await api.put(
            "/v1/vectors/docs/a", content=body, headers={"Content-Type": "application/json"}
        )
    error = assert_error(response, 422, "invalid_request")
    assert "nest" in error["details"][0]["message"], error
    assert fakes.vectors.data == {}
