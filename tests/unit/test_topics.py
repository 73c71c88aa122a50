"""B5: the shared topic matcher, on every example of docs/contracts/events.md and a model."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.events import TopicMatcher, compile_pattern, topic_matches
from app.events.topics import validate_pattern

VECTORS = [
    ("foo.*", "foo.bar", True),
    ("foo.*", "foo.bar.baz", False),
    ("foo.#", "foo.bar.baz.qux", True),
    ("a.b.#", "a.b", True),
    ("a.*.#", "a.b", True),
    ("#.c", "c", True),
    ("a.#.d", "a.d", True),
    ("#.*.#", "x", True),
    ("#", "", True),
    ("*", "", False),
    ("a", "", False),
    ("*.#", "", False),
    ("#.#", "", True),
    ("*.b", "b", False),
    ("a.*", "a", False),
    ("ünï.*", "ünï.cödé", True),
    ("日本.#", "日本", True),
    ("a.b", "a.b", True),
    ("a.b", "a.bb", False),
    ("a+b.(c)", "a+b.(c)", True),
    ("a+b.(c)", "aab.c", False),
    ("#.b.#", "a.b.c", True),
    ("#.b.#", "a.c", False),
    ("*.*", "a.b.c", False),
    ("#", "a.b.c", True),
]


@pytest.mark.parametrize(("pattern", "key", "expected"), VECTORS)
def test_vector(pattern: str, key: str, expected: bool) -> None:
    """Each listed (pattern, key) pair matches exactly as RabbitMQ's topic rules say."""
    assert topic_matches(pattern, key) is expected


def test_only_hash_patterns_match_the_empty_key() -> None:
    """The empty routing key (zero words) is matched by # and by nothing needing a word."""
    matching = [p for p in ("#", "*", "a", "#.*", "*.#", "#.#", "a.#") if topic_matches(p, "")]
    assert matching == ["#", "#.#"]


@pytest.mark.parametrize("bad", ["", "a..b", ".a", "a.", "a*", "#a", "a.b#.c", "x" * 256])
def test_invalid_patterns_are_rejected(bad: str) -> None:
    """A pattern with empty words, glued wildcards or over 255 bytes raises ValueError."""
    with pytest.raises(ValueError, match="pattern"):
        validate_pattern(bad)


def test_non_string_pattern_is_a_type_error() -> None:
    """A pattern that is not a str raises TypeError naming the type."""
    with pytest.raises(TypeError, match="int"):
        validate_pattern(5)


def test_compiled_patterns_are_cached_and_matcher_is_any_of() -> None:
    """compile_pattern compiles once per pattern; a TopicMatcher matches if any pattern does."""
    assert compile_pattern("a.*") is compile_pattern("a.*")
    matcher = TopicMatcher(("a.*", "b.#"))
    assert [matcher(key) for key in ("a.x", "b", "c")] == [True, True, False]
    with pytest.raises(ValueError, match="at least one pattern"):
        TopicMatcher(())


def _reference(pattern: list[str], words: list[str]) -> bool:
    """The topic rules, written as plain recursion over words."""
    if not pattern:
        return not words
    head, rest = pattern[0], pattern[1:]
    if head == "#":
        return any(_reference(rest, words[skip:]) for skip in range(len(words) + 1))
    if not words:
        return False
    return (head in {"*", words[0]}) and _reference(rest, words[1:])


WORD = st.sampled_from(["a", "b", "c", "ü"])
PATTERN_WORD = st.sampled_from(["a", "b", "c", "ü", "*", "#"])


@given(
    pattern=st.lists(PATTERN_WORD, min_size=1, max_size=6),
    key=st.lists(WORD, min_size=0, max_size=6),
)
def test_matcher_agrees_with_the_reference(pattern: list[str], key: list[str]) -> None:
    """For random patterns and keys the compiled matcher agrees with the recursive reference."""
    assert topic_matches(".".join(pattern), ".".join(key)) is _reference(pattern, key)


@pytest.mark.timeout(10)
@pytest.mark.parametrize("separator", ["#", "#.*"])
def test_many_hashes_against_a_long_key_do_not_backtrack(separator: str) -> None:
    """B5: patterns with many # (a client may send them) match in linear time, correctly.

    A backtracking regular expression took 9 s for ten # against 25 words; at 60 and 120
    words it would not finish within the timeout.
    """
    pattern = ".".join([separator] * 60) + ".z"
    words = ["a"] * 120
    assert topic_matches(pattern, ".".join(words)) is False
    assert topic_matches(pattern, ".".join([*words, "z"])) is True
    assert topic_matches(pattern, ".".join([*words[:40], "z"])) is (separator == "#")


def test_hash_runs_mean_one_hash_and_only_hash_patterns_match_the_empty_key() -> None:
    """B5: #.# (and #.#.#) behave as #, matching the empty key; #.*.# needs one word."""
    for pattern in ("#.#", "#.#.#"):
        assert [topic_matches(pattern, key) for key in ("", "a", "a.b.c")] == [True] * 3
    assert [topic_matches("#.*.#", key) for key in ("", "a", "a.b")] == [False, True, True]
    assert [topic_matches("a.#.#.b", key) for key in ("a.b", "a.x.y.b", "a.x")] == [
        True,
        True,
        False,
    ]
