"""The Lua scripts of the Redis backend, shipped as ``*.lua`` files beside this module.

Each script is run by SHA (``EVALSHA``), one round trip per operation; the SHA is computed
locally, so nothing is sent at start-up. When Redis answers ``NOSCRIPT`` (first use, or
after a restart or ``SCRIPT FLUSH``) the source is loaded once and the call repeated.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError

__all__ = ["LuaScript", "load_script"]


@dataclass(frozen=True, slots=True)
class LuaScript:
    """A script's source and its SHA1, as Redis names it."""

    name: str
    source: str
    sha: str

    async def run(self, redis: Redis, keys: int, *keys_and_args: Any) -> Any:
        """``EVALSHA`` the script; on ``NOSCRIPT`` load it and try once more."""
        try:
            return await redis.evalsha(self.sha, keys, *keys_and_args)
        except NoScriptError:
            return await self.load_and_run(redis, keys, *keys_and_args)

    async def load_and_run(self, redis: Redis, keys: int, *keys_and_args: Any) -> Any:
        """``SCRIPT LOAD`` the source (checking Redis names it by our SHA), then run it."""
        loaded: object = await redis.script_load(self.source)
        if loaded not in (self.sha, self.sha.encode()):
            raise RuntimeError(
                f"Redis loaded script {self.name} as {loaded!r}, expected SHA {self.sha}"
            )
        return await redis.evalsha(self.sha, keys, *keys_and_args)


@cache
def load_script(name: str) -> LuaScript:
    """Read ``app/state/<name>.lua`` (once per process) and compute its SHA1."""
    source = resources.files("app.state").joinpath(f"{name}.lua").read_text(encoding="utf-8")
    sha = hashlib.sha1(source.encode("utf-8"), usedforsecurity=False).hexdigest()
    return LuaScript(name, source, sha)
