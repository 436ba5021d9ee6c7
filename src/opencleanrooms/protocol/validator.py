"""Server-side validation of an operation's input against every constraint its botocore model carries.

botocore's client-side ParamValidator only checks required/min/type, and other SDKs or raw HTTP check nothing,
so the server enforces required, type, length/range, pattern, enum and union constraints itself. This module is
generic: it only reads ``botocore.model.Shape`` objects.

Wire behaviour follows AWS Coral (JSON) services, e.g. ``1 validation error detected: Value '0' at 'maxResults'
failed to satisfy constraint: Member must have value greater than or equal to 1``:

* Paths: members joined with ``.``; list elements 1-based with ``.member`` (``members.1.member.accountId``).
* Maps, as Coral does it: a bad key or a bad scalar value yields one violation *at the map's path*, e.g.
  ``Map keys must satisfy constraint: [<all constraints of the key shape>]`` (``Map value ...`` for values), at
  most one of each per map. Non-scalar map values are validated recursively under ``<map>.<key>``.
* Values are shown as Coral shows them: ``null`` unquoted, everything else quoted (``'0'``, ``'true'``, ``'[a, b]'``,
  ``'{k=v}'``), cut to 128 characters plus ``...``. Values in or under a sensitive shape are omitted entirely
  (``value_repr == ""`` and the message reads ``Value at 'path' ...``), as Coral does for sensitive members.
* Patterns must match the *whole* value (Java ``Matcher.matches()``), as Coral does; ``re.search`` semantics would
  make patterns like ``[\\w]*`` vacuous. Java ``\\p{..}`` general categories are translated for Python ``re``, and
  patterns prone to catastrophic backtracking run on a small backtracking-free matcher (see ``compile_pattern``).
* ``max_violations`` bounds the work and the message; lists and maps of the wrong size are not walked.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any, Callable

import botocore.model

from opencleanrooms.protocol.patterns import compile_pattern

__all__ = ["FieldViolation", "validate", "validation_message"]

_SHOW_LIMIT = 128  # never echo more than this many characters of a client's value back
_MAX_DEPTH = 64  # far deeper than any real model; only a recursive shape plus hostile input can get here
_INT_RANGE = {"integer": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}
_NOT_NULL = "Member must not be null"


@dataclass(frozen=True)
class FieldViolation:
    path: str  # "name", "dataEncryptionMetadata.allowCleartext", "members.1.member.accountId", "tags"
    constraint: str  # "Member must have length less than or equal to 100"
    value_repr: str  # "null", "'abc'", "'5'"; "" when the value is sensitive and therefore not shown

    @property
    def message(self) -> str:
        shown = f"Value {self.value_repr} at" if self.value_repr else "Value at"
        return f"{shown} '{self.path}' failed to satisfy constraint: {self.constraint}"


def validation_message(violations: list[FieldViolation]) -> str:
    """The ValidationException message Coral services send."""
    n = len(violations)
    return f"{n} validation error{'' if n == 1 else 's'} detected: " + "; ".join(v.message for v in violations)


def validate(shape: botocore.model.StructureShape, params: dict, max_violations: int = 50) -> list[FieldViolation]:
    """All constraint violations of ``params`` (member name -> value), in model order, at most ``max_violations``."""
    if shape is None or max_violations <= 0:
        return []
    if not isinstance(params, dict):
        raise TypeError("params must be a dict of member name to value")
    ctx = _Ctx(max_violations)
    try:
        _plan_for(shape).check(params, None, 0, ctx, False)
    except _Full:
        pass
    return ctx.out


def _path(path: tuple | None) -> str:
    parts = []
    while path is not None:
        path, seg = path
        parts.append(f"{seg + 1}.member" if type(seg) is int else seg)
    return ".".join(reversed(parts))


def _show(value: Any) -> str:
    """Coral's rendering (Java toString in quotes), bounded so huge values cost nothing."""
    if value is None:
        return "null"
    buf: list[str] = []
    _text(value, buf, 0)
    text = "".join(buf)
    return f"'{text[:_SHOW_LIMIT]}...'" if len(text) > _SHOW_LIMIT else f"'{text}'"


def _text(v: Any, buf: list[str], n: int) -> int:
    """Append Java-toString-like text of v to buf; stop early once past the display limit."""
    if isinstance(v, (dict, list)):
        is_map = isinstance(v, dict)
        buf.append("{" if is_map else "[")
        n += 1
        for i, item in enumerate(v.items() if is_map else v):
            if n > _SHOW_LIMIT:
                return n
            if i:
                buf.append(", ")
                n += 2
            if is_map:
                n = _text(item[0], buf, n) + 1
                buf.append("=")
                item = item[1]
            n = _text(item, buf, n)
        buf.append("}" if is_map else "]")
        return n + 1
    if isinstance(v, bool) or v is None:
        text = "null" if v is None else "true" if v else "false"
    else:
        try:
            text = (v if isinstance(v, str) else str(v))[: _SHOW_LIMIT + 1]
        except ValueError:  # int too large to convert
            text = "<number>"
    buf.append(text)
    return n + len(text)


class _Full(Exception):
    """Raised to stop collecting once max_violations is reached."""


class _Ctx:
    __slots__ = ("out", "limit")

    def __init__(self, limit: int) -> None:
        self.out: list[FieldViolation] = []
        self.limit = limit

    def add(self, path: tuple | None, constraint: str, value: Any, sensitive: bool) -> None:
        shown = "null" if value is None else "" if sensitive else _show(value)
        self.out.append(FieldViolation(_path(path), constraint, shown))
        if len(self.out) >= self.limit:
            raise _Full


class _Plan:
    """What a shape requires, precomputed once. Scalars answer ``problems(v)``; every plan has ``check``."""

    __slots__ = ("check", "problems", "describe")

    def __init__(self) -> None:
        self.problems: Callable[[Any], list[str]] | None = None  # set for scalar shapes only
        self.describe: list[str] = []  # the declared constraints, listed in Coral's map key/value messages


_PLANS: dict[tuple, tuple[botocore.model.Shape, _Plan]] = {}


def _plan_for(shape: botocore.model.Shape) -> _Plan:
    """Cached per model shape (botocore hands out the same definition dict for a name, so key on it)."""
    key = (shape.name, id(getattr(shape, "_shape_model", shape)))
    hit = _PLANS.get(key)
    if hit is None:
        hit = _PLANS[key] = (shape, _build(shape, {}))
    return hit[1]


def _bound(word: str, rel: str, limit: Any) -> list[str]:
    return [] if limit is None else [f"Member must have {word} {rel} than or equal to {limit}"]


def _size_error(n: int, lo: Any, hi: Any) -> str | None:
    """Length violation of a list or map (Coral words entry counts as "length")."""
    if hi is not None and n > hi:
        return f"Member must have length less than or equal to {hi}"
    if lo is not None and n < lo:
        return f"Member must have length greater than or equal to {lo}"
    return None


def _build(shape: botocore.model.Shape, memo: dict[str, _Plan]) -> _Plan:
    if shape.name in memo:  # shared (or recursive) shape
        return memo[shape.name]
    plan = memo[shape.name] = _Plan()
    md, kind = shape.metadata, shape.type_name
    sens, lo, hi = bool(md.get("sensitive")), md.get("min"), md.get("max")
    type_error = f"Member must be of type {kind}"
    if kind == "structure" and (md.get("document") or getattr(shape, "is_document_type", False)):
        plan.check = lambda v, path, depth, ctx, s: None  # any JSON value; deliberately not walked
        return plan
    if kind == "structure":
        required = set(shape.required_members)
        members = [(name, _build(m, memo), name in required) for name, m in shape.members.items()]
        union = bool(md.get("union") or getattr(shape, "is_tagged_union", False))

        def check(v, path, depth, ctx, s):
            s = s or sens
            if type(v) is not dict or depth >= _MAX_DEPTH:
                text = type_error if type(v) is not dict else f"Member must not be nested deeper than {_MAX_DEPTH}"
                return ctx.add(path, text, v, s)
            if union and sum(v.get(name) is not None for name, _, _ in members) != 1:
                ctx.add(path, "Member must have exactly one member set", v, s)
            for name, p, req in members:
                x = v.get(name)
                if x is not None:
                    p.check(x, (path, name), depth + 1, ctx, s)
                elif req:
                    ctx.add((path, name), _NOT_NULL, None, s)

    elif kind == "list":
        elem = _build(shape.member, memo)

        def check(v, path, depth, ctx, s):
            s = s or sens
            if type(v) is not list:
                return ctx.add(path, type_error, v, s)
            if text := _size_error(len(v), lo, hi):  # wrong size: rejected anyway, don't walk a huge list
                return ctx.add(path, text, v, s)
            for i, item in enumerate(v):
                if item is None:
                    ctx.add((path, i), _NOT_NULL, None, s)
                else:
                    elem.check(item, (path, i), depth + 1, ctx, s)

    elif kind == "map":
        kp, vp = _build(shape.key, memo), _build(shape.value, memo)

        def check(v, path, depth, ctx, s):
            s = s or sens
            if type(v) is not dict or not all(isinstance(k, str) for k in v):
                return ctx.add(path, type_error, v, s)
            if text := _size_error(len(v), lo, hi):
                return ctx.add(path, text, v, s)
            bad_key = bad_value = False
            for k, x in v.items():
                if not bad_key and kp.problems is not None and (found := kp.problems(k)):
                    bad_key = True
                    ctx.add(path, _entry_text("Map keys", kp, found), v, s)
                if vp.problems is None:  # structured values: validate in place, under "<map>.<key>"
                    if x is None:
                        ctx.add((path, k), _NOT_NULL, None, s)
                    else:
                        vp.check(x, (path, k), depth + 1, ctx, s)
                elif not bad_value and (found := [_NOT_NULL] if x is None else vp.problems(x)):
                    bad_value = True
                    ctx.add(path, _entry_text("Map value", vp, found), v, s)

    else:
        problems = plan.problems = _scalar(shape, kind, plan)

        def check(v, path, depth, ctx, s):
            for text in problems(v):
                ctx.add(path, text, v, s or sens)

    plan.check = check
    return plan


def _entry_text(what: str, plan: _Plan, found: list[str]) -> str:
    listed = plan.describe + [t for t in found if t not in plan.describe]
    return f"{what} must satisfy constraint: [{', '.join(listed)}]"


_OK: list[str] = []  # shared "no problems" result; never mutated


def _scalar(shape: botocore.model.Shape, kind: str, plan: _Plan) -> Callable[[Any], list[str]]:
    """The problems() function of a scalar shape; texts and regex prepared here, not per call."""
    md = shape.metadata
    lo, hi, type_error = md.get("min"), md.get("max"), [f"Member must be of type {kind}"]
    if kind == "string":
        pattern, enum = md.get("pattern"), getattr(shape, "enum", None) or None
        match = compile_pattern(pattern) if pattern else None
        too_long, too_short = _bound("length", "less", hi), _bound("length", "greater", lo)
        bad_pattern = [f"Member must satisfy regular expression pattern: {pattern}"] if match else []
        bad_enum = [f"Member must satisfy enum value set: [{', '.join(enum)}]"] if enum else []
        allowed = frozenset(enum or ())
        plan.describe = too_long + too_short + bad_pattern + bad_enum

        def problems(v):
            if not isinstance(v, str):
                return type_error
            found = _OK
            if hi is not None and len(v) > hi:
                found = too_long
            elif lo is not None and len(v) < lo:
                found = too_short
            elif match is not None and not match(v):  # only once length passed: bounded regex work
                found = bad_pattern
            return found + bad_enum if enum and v not in allowed else found

        return problems
    if kind in ("integer", "long", "double", "float"):
        too_small, too_big = _bound("value", "greater", lo), _bound("value", "less", hi)
        plan.describe = too_big + too_small
        lo_type, hi_type = _INT_RANGE.get(kind, (None, None))

        def problems(v):
            t = type(v)
            if lo_type is not None:
                if t is not int or not lo_type <= v <= hi_type:
                    return type_error
            elif t is not int and t is not float:
                return type_error
            if lo is not None and not v >= lo:  # "not >=": NaN fails a range as well
                return too_small
            return too_big if hi is not None and not v <= hi else _OK

        return problems
    accepted = {"boolean": (bool,), "timestamp": (int, float, datetime.datetime), "blob": (str, bytes)}
    types = accepted.get(kind, (object,))
    no_bool = kind != "boolean"  # bool is an int subclass, never a number or a timestamp
    return lambda v: type_error if not isinstance(v, types) or (no_bool and type(v) is bool) else _OK
