"""The one topic matcher both buses use: RabbitMQ topic rules, compiled once per pattern.

A routing key (the event ``type``) is a list of words separated by ``.``; the empty key
has zero words. In a pattern ``*`` matches exactly one word and ``#`` zero or more words,
so ``a.#`` matches ``a``, and the empty key is matched only by a pattern of ``#`` words
alone (``#``, ``#.#``): every other pattern needs at least one word (B5).

Adjacent ``#`` words mean the same as one (``#.#`` is ``#``), so they are merged first.
A pattern with at most one ``#`` left compiles to a regular expression over the key with a
``.`` put in front of every word (``"a.b"`` is matched as ``".a.b"``, the empty key as
``""``): a literal word becomes ``\\.word``, ``*`` ``\\.[^.]+`` and ``#`` ``(?:\\.[^.]+)*``.
With two or more ``#`` such an expression backtracks exponentially on a key that does not
match (ten ``#`` against 25 words took 9 s), and patterns come from clients
(``GET /v1/events?pattern=``), so those patterns run a word-by-word automaton instead:
the set of pattern positions reachable so far, as a bit mask, O(words x pattern words).

:func:`pattern_set` is the one spelling of a subscription's patterns that names a group's
share of events, with its group name (B21): sorted, duplicates dropped.
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
    "pattern_set",
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
    words = _merge_hashes(pattern.split("."))
    if words == ["#"]:
        return _match_all
    if "*" not in words and "#" not in words:
        return pattern.__eq__
    if words.count("#") > 1:
        return _automaton(words)
    pieces = []
    for word in words:
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


def _merge_hashes(words: list[str]) -> list[str]:
    """``words`` with each run of adjacent ``#`` merged into one (same meaning)."""
    merged: list[str] = []
    for word in words:
        if word != "#" or not merged or merged[-1] != "#":
            merged.append(word)
    return merged


def _automaton(words: list[str]) -> Callable[[str], bool]:
    """A matcher in time linear in the key: bit ``i`` of the state means "the key so far
    matches the first ``i`` pattern words"; a ``#`` at ``i`` lets bit ``i`` stay set and
    also sets bit ``i + 1`` without consuming a word."""
    hashes = 0
    for index, word in enumerate(words):
        if word == "#":
            hashes |= 1 << index
    accept = 1 << len(words)

    def closure(state: int) -> int:
        # A set bit at a '#' also sets the next bit; repeat for '#' runs (merged: none).
        while True:
            grown = state | ((state & hashes) << 1)
            if grown == state:
                return state
            state = grown

    def matches(key: str) -> bool:
        state = closure(1)
        for key_word in key.split(".") if key else ():
            following = 0
            for index, word in enumerate(words):
                if not state >> index & 1:
                    continue
                if word == "#":
                    following |= 1 << index
                elif word in ("*", key_word):
                    following |= 1 << (index + 1)
            state = closure(following)
            if not state:
                return False
        return bool(state & accept)

    return matches


def _match_all(key: str) -> bool:
    return True


def topic_matches(pattern: str, key: str) -> bool:
    """True if the routing key ``key`` matches the topic ``pattern``."""
    return compile_pattern(pattern)(key)


def pattern_set(patterns: tuple[str, ...]) -> tuple[str, ...]:
    """The patterns of one subscription as a group names them: sorted, without duplicates."""
    return tuple(sorted(set(patterns)))


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
