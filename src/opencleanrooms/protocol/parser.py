"""Turns an HTTP request into the operation's input dict (rest-json bindings from the model).

URI labels, query-string members and the JSON body are merged into one dict keyed by model member names. Values
that cannot be converted to the member's type are left as the raw string so that the validator reports them with
the member's name; only a body that is not a JSON object is a protocol (serialization) error.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from urllib.parse import unquote

import botocore.model

from opencleanrooms.errors import ServiceError

_MAX_JSON_DEPTH = 64
_INTEGER = re.compile(r"[+-]?[0-9]+")


@dataclass(frozen=True)
class _Binding:
    uri: dict[str, botocore.model.Shape] = field(default_factory=dict)  # wire label -> member shape
    query: dict[str, tuple[str, botocore.model.Shape]] = field(default_factory=dict)  # wire name -> (member, shape)
    body: dict[str, str] = field(default_factory=dict)  # wire name -> member name
    headers: dict[str, tuple[str, botocore.model.Shape]] = field(default_factory=dict)


class RequestParser:
    """Precomputes each operation's bindings once, then parses requests against them."""

    def __init__(self) -> None:
        self._bindings: dict[str, _Binding] = {}

    def _binding(self, op: botocore.model.OperationModel) -> _Binding:
        binding = self._bindings.get(op.name)
        if binding is None:
            binding = _Binding()
            shape = op.input_shape
            for name, member in (shape.members.items() if shape is not None else ()):
                location = member.serialization.get("location")
                wire = member.serialization.get("name", name)
                if location == "uri":
                    binding.uri[wire] = (name, member)
                elif location == "querystring":
                    binding.query[wire] = (name, member)
                elif location == "header":
                    binding.headers[wire.lower()] = (name, member)
                elif location is None:
                    binding.body[wire] = name
            self._bindings[op.name] = binding
        return binding

    def parse(
        self,
        op: botocore.model.OperationModel,
        labels: dict[str, str],
        query_string: str,
        headers: dict[str, str],
        body: bytes,
    ) -> dict:
        binding = self._binding(op)
        params: dict = {}
        for wire, (name, shape) in binding.uri.items():
            if wire in labels:
                params[name] = _scalar(shape, labels[wire])
        if binding.query and query_string:
            for key, value in _query_pairs(query_string):
                target = binding.query.get(key)
                if target is None:
                    continue  # unknown query parameters are ignored, as AWS does
                name, shape = target
                if shape.type_name == "list":
                    params.setdefault(name, []).append(_scalar(shape.member, value))
                elif name not in params:
                    params[name] = _scalar(shape, value)
        for wire, (name, shape) in binding.headers.items():
            if wire in headers:
                params[name] = _scalar(shape, headers[wire])
        if binding.body:
            document = parse_json_object(body)
            members = op.input_shape.members
            for wire, name in binding.body.items():
                value = document.get(wire)
                if value is not None:
                    params[name] = _prune(members[name], value)
        return params


def _prune(shape: botocore.model.Shape, value):
    """Drop what the shape does not define, and null members, at every depth, as AWS's deserializers do.

    Nulls inside lists and maps stay, so that the validator can report them; values of the wrong JSON type are
    left for the validator too.
    """
    kind = shape.type_name
    if kind == "structure" and isinstance(value, dict) and not shape.metadata.get("document"):
        members = shape.members
        return {key: _prune(members[key], item) for key, item in value.items()
                if item is not None and key in members}
    if kind == "list" and isinstance(value, list):
        return [item if item is None else _prune(shape.member, item) for item in value]
    if kind == "map" and isinstance(value, dict):
        return {key: item if item is None else _prune(shape.value, item) for key, item in value.items()}
    return value


def parse_json_object(body: bytes) -> dict:
    """Decode a JSON object body; anything else is a SerializationException, as AWS answers."""
    if not body or not body.strip():
        return {}
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise _serialization_error("Request body is not valid UTF-8") from None
    if _nesting_depth_exceeds(text, _MAX_JSON_DEPTH):
        raise _serialization_error("Request body is nested too deeply")
    try:
        document = json.loads(text)
    except (ValueError, RecursionError):
        raise _serialization_error("Request body is not valid JSON") from None
    if not isinstance(document, dict):
        raise _serialization_error("Request body must be a JSON object")
    if "\\u" in text and not _is_valid_unicode(document):
        raise _serialization_error("Request body contains a string that is not valid Unicode (unpaired surrogate)")
    return document


def _is_valid_unicode(document: dict) -> bool:
    """JSON escapes can spell lone surrogates, which no UTF-8 store or response can carry."""
    try:
        json.dumps(document, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _nesting_depth_exceeds(text: str, limit: int) -> bool:
    """True when arrays/objects nest deeper than `limit` (brackets inside strings do not count)."""
    if text.count("[") + text.count("{") <= limit:
        return False
    depth, in_string, escaped = 0, False, False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > limit:
                return True
        elif ch in "]}":
            depth -= 1
    return False


def _query_pairs(query_string: str) -> list[tuple[str, str]]:
    pairs = []
    for part in query_string.split("&"):
        if not part:
            continue
        key, _, value = part.partition("=")
        pairs.append((unquote(key), unquote(value)))
    return pairs


def _scalar(shape: botocore.model.Shape, raw: str):
    """Convert a string from the URI, query or a header to the member's type; keep the raw text if it won't."""
    kind = shape.type_name
    try:
        if kind in ("integer", "long"):
            return int(raw) if _INTEGER.fullmatch(raw) else raw
        if kind in ("float", "double"):
            return float(raw)
        if kind == "boolean":
            return {"true": True, "false": False}.get(raw, raw)
    except ValueError:
        return raw
    return raw


def _serialization_error(message: str) -> ServiceError:
    return ServiceError("SerializationException", message, status=400)
