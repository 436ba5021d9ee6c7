"""Model patterns as whole-value Python matchers: Java categories, ASCII classes, backtracking-free fallback."""

from __future__ import annotations

import re

import pytest

from opencleanrooms.protocol.model import load_service_model
from opencleanrooms.protocol.patterns import compile_pattern, runs_on_simulation

SM = load_service_model()


def model_patterns() -> dict[str, str]:
    patterns = {}
    for name in SM.shape_names:
        pattern = SM.shape_for(name).metadata.get("pattern")
        if pattern is not None:
            patterns.setdefault(pattern, name)
    return patterns


def test_every_model_pattern_compiles():
    patterns = model_patterns()
    assert len(patterns) > 30
    failing = [(name, p) for p, name in patterns.items() if compile_pattern(p) is None]
    assert failing == []


def test_java_unicode_categories_are_supported():
    snowflake = compile_pattern(r"[\p{L}\p{M}\p{N}\p{Pc}\p{Pd}\p{Zs}]+")
    assert snowflake("données_été-2024") and snowflake("日本語 テーブル")
    assert not snowflake("a;b") and not snowflake("a.b") and not snowflake("")
    assert compile_pattern(r"\P{L}+")("123") and not compile_pattern(r"\P{L}+")("12a")
    assert compile_pattern(r"\p{Xx}") is None and compile_pattern("(unclosed") is None


def test_ascii_semantics_for_shorthand_classes():
    assert compile_pattern(r"\d+")("123") and not compile_pattern(r"\d+")("١٢٣")  # Arabic-Indic digits
    assert not compile_pattern(r"\w+")("été")


# Each has a loop (or alternation) inside a loop, so it runs on the backtracking-free matcher.
@pytest.mark.parametrize("pattern", [r"[a-zA-Z0-9_](([a-zA-Z0-9_]+)*([a-zA-Z0-9_]+))?", r"(a|ab)*c", r"(\w+\s?)*",
                                     r"((?!ab)\w+)*", r"(^a$|^b)+", r"([^a-c]+\.?)*", r"((?=a)\w\d{1,2})*",
                                     r"(a|bc|\d)*\Z", r"(.|1)+", r"((1|\D\d)*)?"])
def test_backtracking_safe_matcher_agrees_with_re(pattern):
    assert runs_on_simulation(pattern)
    matcher, reference = compile_pattern(pattern), re.compile(pattern, re.ASCII)
    alphabet = "ab1 c.-_!"
    for length in range(6):
        for i in range(len(alphabet) ** min(length, 3)):
            text = "".join(alphabet[(i // len(alphabet) ** k) % len(alphabet)] for k in range(length))
            assert matcher(text) == (reference.fullmatch(text) is not None), text




def test_plain_patterns_stay_on_re():
    assert not runs_on_simulation(r"\d+") and not runs_on_simulation(r"[a-z]{3,63}")
