"""Random strings that match a model pattern as a whole (as the server enforces it), for any pattern in the model.

The generator walks the pattern's parse tree (Python's own regex parser) and draws each piece: literals as they
are, character classes mostly from readable ASCII with some non-ASCII letters, branches and repetitions at random.
Lookarounds and anchors are not generated, only checked: every candidate is verified with a whole-value match of
the pattern (translated independently by ``conformance``) and drawn again until one fits the length bounds.
Surrogates are never drawn (the server refuses them in JSON, whatever a pattern allows).

``\\p{..}`` general categories, which Python's ``re`` lacks, are replaced for drawing by a few characters of each
category; the verification uses the full categories.
"""

from __future__ import annotations

import functools
import random
import re
import string
from re import _constants as C  # noqa: N812  (the stdlib regex parser, 3.11+)
from re import _parser as P  # noqa: N812

from tests.support.conformance import _compile

MAXREPEAT = C.MAXREPEAT
_NICE = string.ascii_letters + string.digits + " _-.:/"
_EXOTIC = "éßЖж中文日本한국عربיתǅ٣\u00a0…"  # non-ASCII characters of several categories, no surrogates
_CATEGORY_SAMPLES = {  # \p{X}: a few members of the category, for drawing only
    "L": "abcxyzABCXYZéßЖ中文ǅ", "Lu": "ABCXYZЖ", "Ll": "abcxyzéßж", "M": "\u0301\u0308", "Mn": "\u0301",
    "N": "0123456789٣", "Nd": "0123456789٣", "Pc": "_", "Pd": "-", "Zs": " \u00a0", "S": "+$", "P": "-_.!",
}
_CLASS_CATEGORIES = {
    C.CATEGORY_DIGIT: string.digits, C.CATEGORY_WORD: string.ascii_letters + string.digits + "_",
    C.CATEGORY_SPACE: " \t",
}
_NOT_CATEGORIES = {C.CATEGORY_NOT_DIGIT: C.CATEGORY_DIGIT, C.CATEGORY_NOT_WORD: C.CATEGORY_WORD,
                   C.CATEGORY_NOT_SPACE: C.CATEGORY_SPACE}
_PROPERTY = re.compile(r"\\[pP]\{(?:Is)?(\w+)\}")


class Unsupported(Exception):
    """A construct the generator cannot draw (back-references, conditionals)."""


class _Retry(Exception):
    """This draw cannot match (an anchor in the wrong place): draw again."""


def _drawable(pattern: str) -> str:
    def sample(m: re.Match) -> str:
        chars = _CATEGORY_SAMPLES.get(m.group(1)) or _CATEGORY_SAMPLES.get(m.group(1)[:1]) or "a"
        return "".join(re.escape(c) if c in "-\\]^[" else c for c in chars)

    # Inside a class the samples join the class; outside, they become one.
    out, i, in_class = [], 0, False
    while i < len(pattern):
        m = _PROPERTY.match(pattern, i)
        if m:
            body = sample(m)
            out.append(body if in_class else f"[{body}]")
            i = m.end()
            continue
        if pattern[i] == "\\":
            out.append(pattern[i:i + 2])
            i += 2
            continue
        if pattern[i] == "[" and not in_class:
            in_class = True
        elif pattern[i] == "]" and in_class:
            in_class = False
        out.append(pattern[i])
        i += 1
    return "".join(out)


@functools.cache
def _tree(pattern: str):
    return P.parse(_drawable(pattern), re.ASCII)


def matches(pattern: str, value: str) -> bool:
    """Whole-value match, as the server enforces patterns (True if the pattern cannot be compiled here)."""
    regex = _compile(pattern)
    return regex is None or regex.fullmatch(value) is not None


def generate(pattern: str, rng: random.Random, lo: int = 0, hi: int | None = None, *, attempts: int = 400) -> str:
    """A string of length lo..hi matching `pattern` as a whole. Raises Unsupported when none can be drawn."""
    hi = 10_000 if hi is None else hi
    tree = _tree(pattern)
    for attempt in range(attempts):
        # A length to aim at (mostly short, sometimes up to the maximum); repetitions of one character fill up
        # to it, others repeat a few times (more while the results stay too short).
        roll = rng.random()
        target = rng.randint(lo, min(hi, lo + (24 if roll < 0.6 else 120 if roll < 0.9 else hi)))
        cap = (2, 4, 8, 16, 48, 160)[min(attempt // 20, 5)] if rng.random() < 0.9 else rng.choice((32, 96, 300))
        try:
            value = _Draw(rng, cap, hi, target, tree.state).seq(tree, "")
        except _Retry:
            continue
        if lo <= len(value) <= hi and not any(0xD800 <= ord(c) <= 0xDFFF for c in value) and matches(pattern, value):
            return value
    raise Unsupported(f"no string of length {lo}..{hi} drawn for pattern {pattern!r}")


class _Draw:
    def __init__(self, rng: random.Random, cap: int, hi: int, target: int, state) -> None:
        self.rng, self.cap, self.hi, self.target, self.state = rng, cap, hi, target, state

    def _widths(self, items) -> tuple[list[int], tuple[int, int]]:
        """(least width of what follows each item, (min, max) width of all), cached per parse-tree node."""
        cached = _WIDTHS.get(id(items))
        if cached is None or cached[0] is not items:
            items_list = list(items)
            after = [P.SubPattern(self.state, items_list[i + 1:]).getwidth()[0] for i in range(len(items_list))]
            cached = _WIDTHS[id(items)] = (items, after, P.SubPattern(self.state, items_list).getwidth())
        return cached[1], cached[2]

    def seq(self, items, text: str, after: int = 0) -> str:
        """Draw `items` after `text`; `after` is the least length whatever follows them will add."""
        rest, _ = self._widths(items)
        for i, (op, av) in enumerate(items):
            text = self.item(op, av, text, rest[i] + after)
            if len(text) > self.hi:
                raise _Retry
        return text

    def item(self, op, av, text: str, after: int) -> str:
        rng = self.rng
        if op is C.LITERAL:
            return text + chr(av)
        if op is C.NOT_LITERAL:
            return text + self._pick(_single(("not", av)))
        if op is C.ANY:
            return text + self._pick(_single(("any", 0)))
        if op is C.IN:
            return text + self._pick(_class_info(av))
        if op is C.CATEGORY:
            return text + self._pick(_single(("category", av)))
        if op is C.BRANCH:
            return self.seq(rng.choice(av[1]), text, after)
        if op is C.SUBPATTERN:
            return self.seq(av[-1], text, after)
        if op in (C.MAX_REPEAT, C.MIN_REPEAT, C.POSSESSIVE_REPEAT):
            low, high, body = av
            if self._widths(body)[1] == (1, 1) and rng.random() < 0.7:
                count = max(low, min(self.target - len(text) - after, high))  # fill up to the target length
            else:
                high = low + self.cap if high is MAXREPEAT else min(high, low + self.cap)
                count = low if rng.random() < 0.25 else rng.randint(low, max(low, high))
            for _ in range(count):
                text = self.seq(body, text, after)
            return text
        if op is C.AT:
            if av in (C.AT_BEGINNING, C.AT_BEGINNING_STRING) and text:
                raise _Retry
            return text  # end anchors are checked by the final match
        if op in (C.ASSERT, C.ASSERT_NOT):
            return text  # checked by the final match
        if op is C.ATOMIC_GROUP:
            return self.seq(av, text, after)
        raise Unsupported(f"regex construct {op}")

    def _pick(self, info) -> str:
        test, readable, extra, wide = info
        rng = self.rng
        roll = rng.random()
        if wide and roll < 0.04:  # now and then a character from far up a range
            lo, hi = rng.choice(wide)
            c = chr(rng.randint(lo, hi))
            if test(c) and not 0xD800 <= ord(c) <= 0xDFFF:
                return c
        pool = extra if (extra and roll < 0.12) or not readable else readable
        if not pool:
            raise _Retry
        return rng.choice(pool)


def _info(test, candidates: list[str], wide: list[tuple[int, int]]):
    """(membership test, readable characters, readable + exotic ones, ranges beyond ASCII) of a class."""
    readable = sorted({c for c in candidates if test(c)})
    extra = sorted({c for c in _NICE + _EXOTIC if test(c)} | set(readable))
    return test, readable, extra, wide


_CLASSES: dict[int, tuple] = {}  # id(parse-tree node) -> (node, info)
_SINGLES: dict[tuple, tuple] = {}  # ("not", code) / ("any", 0) / ("category", name) -> info
_WIDTHS: dict[int, tuple] = {}  # id(parse-tree node) -> (node, widths after each item, width)


def _single(key) -> tuple:
    if key not in _SINGLES:
        kind, av = key
        if kind == "category":
            _SINGLES[key] = _class_info([(C.CATEGORY, av)], cache=False)
        else:
            test = (lambda c: ord(c) != av) if kind == "not" else (lambda c: c != "\n")
            _SINGLES[key] = _info(test, list(_NICE), [])
    return _SINGLES[key]


def _class_info(items, cache: bool = True) -> tuple:
    """What to draw for a character class (cached per parse-tree node, which lives as long as the cached tree)."""
    key = id(items)
    if cache and key in _CLASSES and _CLASSES[key][0] is items:
        return _CLASSES[key][1]
    negate = bool(items) and items[0][0] is C.NEGATE
    tests, candidates, wide = [], [], []
    for op, av in items:
        if op is C.LITERAL:
            tests.append(lambda c, av=av: ord(c) == av)
            candidates.append(chr(av))
        elif op is C.RANGE:
            lo, hi = av
            tests.append(lambda c, lo=lo, hi=hi: lo <= ord(c) <= hi)
            candidates += [chr(c) for c in range(max(lo, 0x20), min(hi, 0x7E) + 1)]
            if hi > 0x7E:
                wide.append((max(lo, 0x7F), hi))
        elif op is C.CATEGORY:
            if av in _NOT_CATEGORIES:
                chars = _CLASS_CATEGORIES[_NOT_CATEGORIES[av]]
                tests.append(lambda c, chars=chars: c not in chars)
            else:
                chars = _CLASS_CATEGORIES.get(av, "")
                tests.append(lambda c, chars=chars: c in chars)
                candidates += list(chars)
    if negate:
        info = _info(lambda c: not any(t(c) for t in tests), list(_NICE), [])
    else:
        info = _info(lambda c: any(t(c) for t in tests), candidates, wide)
    if cache:
        _CLASSES[key] = (items, info)
    return info
