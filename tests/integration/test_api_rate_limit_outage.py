"""The rate limiter when Redis is down (cut through a loopback proxy): deny or allow, as set."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis.asyncio as aioredis
import structlog
from structlog.testing import capture_logs

from containers import create_container
from settings import Settings, load_settings
from tests.conftest import API_TOKEN, serve_app
from tests.fakes.tcp_proxy import TcpProxy
from tests.integration.test_api import assert_error

pytestmark = pytest.mark.integration

BODY = {"vector": [0.1, 0.2, 0.3, 0.4]}


@pytest.fixture
async def redis_proxy(redis_url: str, unique_name: str) -> AsyncIterator[TcpProxy]:
    """A proxy in front of the shared Redis that the test cuts; the test's keys are deleted."""
    parts = urlsplit(redis_url)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 6379)
    await proxy.start()
    yield proxy
    await proxy.aclose()
    client = aioredis.Redis.from_url(redis_url)
    async with client:
        keys = [key async for key in client.scan_iter(match=f"{unique_name}*")]
        if keys:
            await client.delete(*keys)


def settings_through(
    proxy: TcpProxy, tmp_path: Path, postgres_dsn: str, namespace: str, **api: object
) -> Settings:
    """distributed settings whose Redis is reached through ``proxy``."""
    return load_settings(
        deployment_mode="distributed",
        data_dir=tmp_path / "data",
        redis={"url": f"redis://127.0.0.1:{proxy.port}/0", "socket_timeout_s": 2},
        postgres={"dsn": postgres_dsn},
        state={"namespace": namespace},
        faiss={"index_path": tmp_path / "faiss", "dimension": 4},
        api={"tokens": [API_TOKEN], **api},
        log={"level": "WARNING"},
    )


async def test_redis_down_denies_with_retry_after_by_default(
    redis_proxy: TcpProxy, tmp_path: Path, postgres_dsn: str, unique_name: str
) -> None:
    """By default a rate limiter that cannot reach Redis refuses (503) and says when to retry."""
    settings = settings_through(redis_proxy, tmp_path, postgres_dsn, unique_name)
    async with serve_app(create_container(settings)) as api:
        assert (await api.put("/v1/vectors/docs/a", json=BODY)).status_code == 200
        await redis_proxy.cut()
        refused = await api.put("/v1/vectors/docs/b", json=BODY)
        await redis_proxy.restore()
    assert_error(refused, 503, "rate_limit_unavailable")
    assert int(refused.headers["Retry-After"]) >= 1


async def test_redis_down_lets_requests_through_when_allowed(
    redis_proxy: TcpProxy, tmp_path: Path, postgres_dsn: str, unique_name: str
) -> None:
    """With API__RATE_LIMIT_ON_ERROR=allow, a /v1 route that needs no Redis still answers while
    Redis is down, one that does says when to retry, and each unlimited request is logged as
    that explicit choice."""
    settings = settings_through(
        redis_proxy, tmp_path, postgres_dsn, unique_name, rate_limit_on_error="allow"
    )
    async with serve_app(create_container(settings)) as api:
        await redis_proxy.cut()
        with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
            stored = await api.put("/v1/vectors/docs/a", json=BODY, headers={"X-Request-ID": "r1"})
            fetched = await api.get("/v1/vectors/docs/a")
            session = await api.get("/v1/sessions/s1")
        await redis_proxy.restore()
    assert stored.status_code == 200, stored.text
    assert fetched.status_code == 200, fetched.text
    assert "X-RateLimit-Remaining" not in stored.headers
    assert_error(session, 503, "state_unavailable")  # sessions do need Redis
    assert int(session.headers["Retry-After"]) >= 1
    bypassed = [entry for entry in logs if entry["event"] == "api.rate_limit_bypassed"]
    assert len(bypassed) == 3
    assert bypassed[0]["request_id"] == "r1"
    assert bypassed[0]["policy"] == "API__RATE_LIMIT_ON_ERROR=allow"
    assert bypassed[0]["log_level"] == "error"


def test_an_unknown_rate_limit_policy_is_refused() -> None:
    """API__RATE_LIMIT_ON_ERROR takes deny or allow; anything else names the variable."""
    with pytest.raises(ValueError, match=r"API__RATE_LIMIT_ON_ERROR.*'deny' or 'allow'"):
        load_settings(api={"rate_limit_on_error": "fallback"})
