"""A model check: random set/get/delete/increment/expire sequences agree with a plain dict.

Hypothesis draws a sequence of operations; each runs on a fresh backend (memory, and Redis
on loopback) and on the model. Expiry is modelled coarsely so that real time (Redis) gives
no borderline cases: every TTL is ``TTL_S`` and an ``advance`` step waits ``STEP_S`` >
``TTL_S``, so a key with a TTL lives exactly until the next ``advance``.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.contract.state_harness import BACKENDS, Kind, open_harness

TTL_S = 0.1
STEP_S = 0.12
INT64 = (-(2**63), 2**63 - 1)
KEYS = st.sampled_from(["a", "b", "c:*", "é"])
JSON = st.recursive(
    st.booleans()
    | st.integers(*INT64)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=3), children, max_size=3)
    ),
    max_leaves=6,
)
TTL = st.sampled_from([None, TTL_S])
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("set"), KEYS, JSON, TTL),
        st.tuples(st.just("get"), KEYS),
        st.tuples(st.just("delete"), KEYS),
        st.tuples(st.just("increment"), KEYS, st.integers(-1000, 1000) | st.integers(*INT64), TTL),
        st.tuples(st.just("advance")),
    ),
    max_size=25,
)


@dataclass
class Model:
    """The expected state: key -> (value, expires at the next advance)."""

    data: dict[str, tuple[Any, bool]] = field(default_factory=dict)

    def apply(self, op: tuple[Any, ...]) -> Any:
        """Run ``op`` on the model; return the expected result or the expected error type."""
        name, *args = op
        if name == "set":
            key, value, ttl = args
            self.data[key] = (value, ttl is not None)
            return None
        if name == "get":
            return self.data.get(args[0], (None, False))[0]
        if name == "delete":
            return self.data.pop(args[0], None) is not None
        if name == "increment":
            key, amount, ttl = args
            current, expires = self.data.get(key, (0, ttl is not None))
            if type(current) is not int:
                return TypeError
            if not INT64[0] <= current + amount <= INT64[1]:
                return ValueError
            self.data[key] = (current + amount, expires)
            return current + amount
        self.data = {key: entry for key, entry in self.data.items() if not entry[1]}
        return None


async def run(kind: Kind, url: str | None, ops: list[tuple[Any, ...]]) -> None:
    namespace = f"model{uuid.uuid4().hex[:12]}"
    model = Model()
    async with open_harness(kind, namespace, url) as h:
        b = h.backend
        for step, op in enumerate(ops):
            expected = model.apply(op)
            name, *args = op
            if expected in (TypeError, ValueError):
                with pytest.raises(expected):
                    await b.increment(*args)
                continue
            got: Any = None
            if name == "set":
                await b.set_value(*args)
            elif name == "get":
                got = await b.get_value(*args)
            elif name == "delete":
                got = await b.delete(*args)
            elif name == "increment":
                got = await b.increment(*args)
            else:
                await h.advance(STEP_S)
            assert got == expected, f"step {step}: {op} gave {got!r}, model {expected!r}"
        for key in ["a", "b", "c:*", "é"]:
            assert await b.get_value(key) == model.data.get(key, (None, False))[0]


@pytest.mark.parametrize("kind", BACKENDS)
def test_random_sequences_agree_with_a_dict_model(
    kind: Kind, request: pytest.FixtureRequest
) -> None:
    """Every backend returns what a dict with coarse expiry returns, for any operation sequence."""
    url = request.getfixturevalue("redis_url") if kind == "redis" else None

    @settings(
        max_examples=150 if kind == "memory" else 40,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(ops=OPS)
    def check(ops: list[tuple[Any, ...]]) -> None:
        asyncio.run(run(kind, url, ops))

    check()
