"""Both state backends behind one test harness, for the contract and model suites.

The harness hides the one thing the backends cannot share: time. The in-memory backend runs
on a fake clock moved by :meth:`Harness.advance`; the Redis backend runs on Redis' own clock,
so ``advance`` really sleeps (windows in the tests are short, with margins of 50 ms or more).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Literal

from redis.asyncio import Redis

from app.state import InMemoryStateBackend, RedisStateBackend, StateBackend

__all__ = ["BACKENDS", "FakeClock", "Harness", "open_harness"]

Kind = Literal["memory", "redis"]
BACKENDS: tuple[Kind, ...] = ("memory", "redis")


class FakeClock:
    """A monotonic clock in seconds that moves only when told to."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


@dataclass
class Harness:
    """One backend under test, plus what a test needs around it."""

    kind: Kind
    backend: StateBackend
    namespace: str
    clock: FakeClock | None = None
    redis: Redis | None = None
    second_redis: Redis | None = None
    _extra: list[StateBackend] = field(default_factory=list)

    async def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass for the backend: the fake clock moves, or we sleep for Redis."""
        if self.clock is not None:
            self.clock.now += seconds
        else:
            await asyncio.sleep(seconds)

    def peers(self) -> tuple[StateBackend, StateBackend]:
        """Two handles on the same state: for Redis two backends on two separate clients."""
        if self.second_redis is None:
            return self.backend, self.backend
        other = RedisStateBackend(self.second_redis, namespace=self.namespace)
        self._extra.append(other)
        return self.backend, other

    def sibling(self) -> StateBackend:
        """Another backend instance of the same kind on the same state (Redis) or its own."""
        if self.second_redis is None:
            other: StateBackend = InMemoryStateBackend(clock=self.clock)
        else:
            other = RedisStateBackend(self.second_redis, namespace=self.namespace)
        self._extra.append(other)
        return other

    async def settle(self) -> None:
        """What the deployment does in the background: the memory sweep (Redis expires keys)."""
        if isinstance(self.backend, InMemoryStateBackend):
            self.backend.sweep()

    async def footprint(self) -> int:
        """How many entries the backend holds: memory counts, or Redis keys in the namespace."""
        if isinstance(self.backend, InMemoryStateBackend):
            stats = self.backend.stats()
            return sum(count for name, count in stats.items() if name != "rate_limit_stamps")
        assert self.redis is not None
        return len(await self.raw_keys())

    async def raw_keys(self) -> list[bytes]:
        """Every Redis key under the namespace (Redis only)."""
        assert self.redis is not None
        return [key async for key in self.redis.scan_iter(match=f"{self.namespace}:*")]

    async def corrupt_embedding(self, text_hash: str, blob: bytes) -> None:
        """Overwrite a cached embedding with raw bytes, as a bug or a bit flip would."""
        if isinstance(self.backend, InMemoryStateBackend):
            self.backend._embeddings[text_hash] = (blob, float("inf"))
        else:
            assert self.redis is not None
            await self.redis.set(f"{self.namespace}:e:{text_hash}", blob)


@asynccontextmanager
async def open_harness(kind: Kind, namespace: str, redis_url: str | None) -> AsyncIterator[Harness]:
    """A fresh backend of ``kind``; Redis keys under ``namespace`` are deleted afterwards."""
    if kind == "memory":
        clock = FakeClock()
        harness = Harness(kind, InMemoryStateBackend(clock=clock), namespace, clock=clock)
    else:
        assert redis_url is not None
        first, second = Redis.from_url(redis_url), Redis.from_url(redis_url)
        harness = Harness(
            kind,
            RedisStateBackend(first, namespace=namespace),
            namespace,
            redis=first,
            second_redis=second,
        )
    try:
        yield harness
    finally:
        for backend in (harness.backend, *harness._extra):
            await backend.close()
        if harness.redis is not None and harness.second_redis is not None:
            keys = await harness.raw_keys()
            if keys:
                await harness.redis.delete(*keys)
            await harness.redis.aclose()
            await harness.second_redis.aclose()
