"""The one topic matcher both buses use: RabbitMQ topic rules, compiled once per pattern.

A routing key (the event ``type``) is a list of words separated by ``.``; the empty key
has zero words. In a pattern ``*`` matches exactly one word and ``#`` zero or more words,
so ``a.#`` matches ``a`` and only ``#`` matches the empty key.

The patterns compile to regular expressions over the key with a ``.`` put in front of
every word (``"a.b"`` is matched as ``".a.b"``, the empty key as ``""``); each pattern word
then becomes one piece: a literal word ``\\.word``, ``*`` ``\\.[^.]+`` and ``#``
``(?:\\.[^.]+)*``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from typing import Final

from app.errors import EventArgumentError, EventArgumentTypeError

__all__ = [
    "MAX_TOPIC_BYTES",
    "TopicMatcher",
    "compile_pattern",
    "topic_matches",
    "validate_pattern",
]

MAX_TOPIC_BYTES: Final = 255
_FORBIDDEN_IN_WORD: Final = frozenset("*#")


def validate_pattern(pattern: object) -> str:
    """Return ``pattern`` if it is a valid topic pattern; else ``ValueError``/``TypeError``."""
    if not isinstance(pattern, str):
        raise EventArgumentTypeError(f"pattern must be a str, got {type(pattern).__name__}")
    if not pattern:
        raise EventArgumentError("pattern must not be empty; use '#' to match every event type")
    if len(pattern.encode("utf-8")) > MAX_TOPIC_BYTES:
        raise EventArgumentError(
            f"pattern must be at most {MAX_TOPIC_BYTES} UTF-8 bytes, "
            f"got {len(pattern.encode('utf-8'))}"
        )
    for word in pattern.split("."):
        if word in {"*", "#"}:
            continue
        if not word:
            raise EventArgumentError(
                f"pattern {pattern!r} has an empty word (two dots or an edge dot)"
            )
        if _FORBIDDEN_IN_WORD & set(word):
            raise EventArgumentError(
                f"pattern {pattern!r} has the word {word!r}: '*' and '#' must stand alone"
            )
    return pattern


@lru_cache(maxsize=4096)
def compile_pattern(pattern: str) -> Callable[[str], bool]:
    """A predicate ``key -> bool`` for ``pattern`` (validated, compiled once, cached)."""
    validate_pattern(pattern)
    if pattern == "#":
        return _match_all
    if "*" not in pattern and "#" not in pattern:
        return pattern.__eq__
    pieces = []
    for word in pattern.split("."):
        if word == "*":
            pieces.append(r"\.[^.]+")
        elif word == "#":
            pieces.append(r"(?:\.[^.]+)*")
        else:
            pieces.append(r"\." + re.escape(word))
    fullmatch = re.compile("".join(pieces), re.DOTALL).fullmatch

    def matches(key: str) -> bool:
        return fullmatch("." + key if key else "") is not None

    return matches


def _match_all(key: str) -> bool:
    return True


def topic_matches(pattern: str, key: str) -> bool:
    """True if the routing key ``key`` matches the topic ``pattern``."""
    return compile_pattern(pattern)(key)


class TopicMatcher:
    """Several patterns of one subscription: matches if any of them does."""

    __slots__ = ("_predicates", "patterns")

    def __init__(self, patterns: tuple[str, ...]) -> None:
        if not patterns:
            raise EventArgumentError("a subscription needs at least one pattern, got none")
        self.patterns = patterns
        self._predicates = tuple(compile_pattern(pattern) for pattern in patterns)

    def __call__(self, key: str) -> bool:
        return any(predicate(key) for predicate in self._predicates)

    def __repr__(self) -> str:
        return f"TopicMatcher({self.patterns!r})"
