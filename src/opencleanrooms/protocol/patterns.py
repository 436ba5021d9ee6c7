"""Model string patterns as Python matchers.

Smithy/Java patterns must match the whole value (Java ``Matcher.matches()``), which is what AWS enforces. Java
``\\p{..}`` general categories are translated for Python ``re`` (which lacks them), with ``re.ASCII`` because
Java's ``\\w``, ``\\d`` and ``\\s`` are ASCII-only. A pattern whose backtracking could explode on hostile input
(a loop inside a loop, e.g. ``([a-z]+)*[a-z]+`` against ``aaaa...a!``) runs on a small backtracking-free simulation
of the parsed pattern instead of ``re``.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from re import _constants as _C, _parser as _sre  # the stdlib regex parser (3.11+), for the backtracking guard
from typing import Any, Callable

__all__ = ["compile_pattern", "runs_on_simulation"]


@functools.cache
def compile_pattern(pattern: str) -> Callable[[str], bool] | None:
    """Whole-value matcher for a model pattern, or None if Python cannot compile it (then it is not enforced)."""
    try:
        text = _translate(pattern)
        compiled = re.compile(text, re.ASCII)
    except (re.error, ValueError, OverflowError):
        return None
    tree = _simulation_tree(text)
    if tree is not None:
        return lambda value: _simulate(tree, value)
    return lambda value: compiled.fullmatch(value) is not None


def runs_on_simulation(pattern: str) -> bool:
    """True when the pattern could backtrack catastrophically and is therefore matched by the simulation."""
    try:
        return _simulation_tree(_translate(pattern)) is not None
    except (re.error, ValueError, OverflowError):
        return False


def _simulation_tree(text: str):
    """The parsed pattern if it is risky for ``re`` and the simulation supports it, else None."""
    try:
        tree = _sre.parse(text, re.ASCII)
        if _risky(list(tree), False):
            _check_ops(tree)
            return tree
    except _Unsupported:
        pass  # a construct the simulation lacks: fall back to re (no worse than without it)
    return None


_TOKEN = re.compile(r"\\([pP])\{(?:Is)?([A-Z][a-z]?)\}|\\.|[\[\]]", re.S)


def _translate(pattern: str) -> str:
    """Rewrite Java's \\p{L}-style general-category escapes, which Python's re lacks, into explicit ranges."""
    if "\\p" not in pattern and "\\P" not in pattern:
        return pattern
    in_class = False

    def rewrite(m: re.Match) -> str:
        nonlocal in_class
        if m.group(1) is None:  # another escape, or a character-class bracket
            in_class = m.group(0) == "[" or (in_class and m.group(0) != "]")
            return m.group(0)
        ranges = _category_ranges(m.group(2))
        if m.group(1) == "P" and in_class:
            raise ValueError("negated property inside a character class")
        return ranges if in_class else f"[{'^' if m.group(1) == 'P' else ''}{ranges}]"

    return _TOKEN.sub(rewrite, pattern)


@functools.cache
def _category_runs() -> list[tuple[str, int, int]]:
    """(category, first, last) runs of code points: one ~0.2 s pass, only if some pattern uses \\p{..}."""
    runs, start, cats = [], 0, [unicodedata.category(chr(cp)) for cp in range(0x110000)] + [None]
    for cp in range(1, len(cats)):
        if cats[cp] != cats[cp - 1]:
            runs.append((cats[cp - 1], start, cp - 1))
            start = cp
    return runs


@functools.cache
def _category_ranges(category: str) -> str:
    ranges = [(a, b) for cat, a, b in _category_runs() if cat.startswith(category)]
    if not ranges:
        raise ValueError(f"unknown Unicode category {category}")
    return "".join(f"\\U{a:08x}" if a == b else f"\\U{a:08x}-\\U{b:08x}" for a, b in ranges)


class _Unsupported(Exception):
    """A regex construct the set-of-positions simulation does not implement."""


_LOOPS = (_C.MAX_REPEAT, _C.MIN_REPEAT)
_AT = {  # anchor -> bitmask of the positions in s where it holds
    _C.AT_BEGINNING: lambda s: 1,
    _C.AT_BEGINNING_STRING: lambda s: 1,
    _C.AT_END: lambda s: 1 << len(s) | (1 << len(s) - 1 if s.endswith("\n") else 0),
    _C.AT_END_STRING: lambda s: 1 << len(s),
}
_CATEGORY = {
    _C.CATEGORY_DIGIT: lambda c: "0" <= c <= "9",
    _C.CATEGORY_NOT_DIGIT: lambda c: not "0" <= c <= "9",
    _C.CATEGORY_WORD: lambda c: c.isascii() and (c.isalnum() or c == "_"),
    _C.CATEGORY_NOT_WORD: lambda c: not (c.isascii() and (c.isalnum() or c == "_")),
    _C.CATEGORY_SPACE: lambda c: c in " \t\n\r\f\v",
    _C.CATEGORY_NOT_SPACE: lambda c: c not in " \t\n\r\f\v",
}


def _char_ok(item: tuple, c: str) -> bool:
    """Does a single-character node (literal, ., class) accept c?"""
    op, av = item
    if op is _C.LITERAL or op is _C.NOT_LITERAL:
        return (ord(c) == av) == (op is _C.LITERAL)
    if op is _C.ANY:
        return c != "\n"
    if op is not _C.IN:
        raise _Unsupported(op)
    negate, hit, o = False, False, ord(c)
    for kind, arg in av:
        if kind is _C.NEGATE:
            negate = True
        elif kind is _C.CATEGORY and arg in _CATEGORY:
            hit = hit or _CATEGORY[arg](c)
        elif kind is _C.LITERAL or kind is _C.RANGE:
            hit = hit or (o == arg if kind is _C.LITERAL else arg[0] <= o <= arg[1])
        else:
            raise _Unsupported(kind)
    return hit != negate


def _consumes(items: Any, c: str) -> bool:
    """Could any single-character node in this subtree accept c?"""
    for op, av in items:
        if op in _LOOPS:
            found = _consumes(av[2], c)
        elif op is _C.SUBPATTERN:
            found = _consumes(av[3], c)
        elif op is _C.BRANCH:
            found = any(_consumes(alt, c) for alt in av[1])
        elif op is _C.AT or op is _C.ASSERT or op is _C.ASSERT_NOT:
            found = False
        else:
            found = _char_ok((op, av), c)
        if found:
            return True
    return False


def _risky(items: list, in_loop: bool, after: tuple | None = None) -> bool:
    """Could backtracking go exponential? A heuristic: yes for a loop or alternation inside a loop, unless the next
    item is a literal that construct cannot consume, which pins where it ends (``([a-z]+-)*`` is fine,
    ``([a-z]+)*`` is not). It does not see ambiguous alternatives within such a stretch, like ``((a|a)-)*``."""
    for i, item in enumerate(items):
        op, av = item
        follower = items[i + 1] if i + 1 < len(items) else after
        inner = in_loop
        if in_loop and (op is _C.BRANCH or (op in _LOOPS and av[1] > 1)):
            try:
                closed = follower is not None and follower[0] is _C.LITERAL and not _consumes([item], chr(follower[1]))
            except _Unsupported:
                closed = False
            if not closed:
                return True
            inner = False  # confined to one delimited stretch: only loops nested inside it matter from here
        if op in _LOOPS and _risky(list(av[2]), inner or av[1] > 1):
            return True
        if op is _C.BRANCH and any(_risky(list(alt), inner, follower) for alt in av[1]):
            return True
        if op is _C.SUBPATTERN and _risky(list(av[3]), inner, follower):
            return True
    return False


def _check_ops(items: Any) -> None:
    for op, av in items:
        if op in _LOOPS:
            _check_ops(av[2])
        elif op is _C.SUBPATTERN:
            _check_ops(av[3])
        elif op is _C.BRANCH:
            for alt in av[1]:
                _check_ops(alt)
        elif op is _C.ASSERT or op is _C.ASSERT_NOT:
            if av[0] != 1:  # lookbehind
                raise _Unsupported(op)
            _check_ops(av[1])
        elif op is _C.AT:
            if av not in _AT:
                raise _Unsupported(av)
        else:
            _char_ok((op, av), "a")  # raises for anything that is not a single-character node


def _simulate(tree: Any, s: str) -> bool:
    """Full match computed on the *set* of reachable positions (a bitmask), never backtracking: polynomial time."""
    n, accepts = len(s), {}

    def seq(items: Any, reach: int) -> int:
        for item in items:
            if not reach:
                break
            reach = node(item, reach)
        return reach

    def node(item: tuple, reach: int) -> int:
        op, av = item
        if op in _LOOPS:
            lo, hi, body = av
            done, count = (reach if lo == 0 else 0), 0
            while reach and count < hi:
                reach, count = seq(body, reach), count + 1
                if count >= lo:  # a position reached before, with fewer repetitions, was expanded already
                    reach &= ~done
                    done |= reach
            return done
        if op is _C.SUBPATTERN:
            return seq(av[3], reach)
        if op is _C.BRANCH:
            return functools.reduce(int.__or__, (seq(alt, reach) for alt in av[1]), 0)
        if op is _C.ASSERT or op is _C.ASSERT_NOT:
            kept, rest = 0, reach
            while rest:
                bit = rest & -rest
                rest ^= bit
                kept |= bit if bool(seq(av[1], bit)) == (op is _C.ASSERT) else 0
            return kept
        if op is _C.AT:
            return reach & _AT[av](s)
        if (mask := accepts.get(id(item))) is None:
            mask = accepts[id(item)] = sum(1 << p for p, c in enumerate(s) if _char_ok(item, c))
        return (reach & mask) << 1

    return bool(seq(tree, 1) >> n & 1)
