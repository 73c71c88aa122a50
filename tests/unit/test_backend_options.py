"""Options the backend resources hand to their drivers."""

from __future__ import annotations

import redis

from app.backends.redis import redis_pool
from settings import load_settings


def test_redis_pools_share_one_driver_info_naming_redis_py_and_its_version() -> None:
    """CLIENT SETINFO still names redis-py and its version; built once, not per pool."""
    settings = load_settings(redis={"url": "redis://127.0.0.1:6379/0"})
    first, second = redis_pool(settings.redis), redis_pool(settings.redis)
    info = first.connection_kwargs["driver_info"]
    assert info is second.connection_kwargs["driver_info"]
    assert info.formatted_name == "redis-py"
    assert info.lib_version == redis.__version__
