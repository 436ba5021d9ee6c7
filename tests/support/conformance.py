"""Check every server response against the botocore model, so wire drift fails tests loudly.

boto3's parser is lenient (it ignores unknown keys, wrong types and bad enums), so an end-to-end test
passing says little about conformance. ``install(client)`` makes every HTTP response a client receives
(each retry attempt included) go through ``check_response``; problems raise ``AssertionError`` out of
the boto3 call. The check functions are pure, for use on raw HTTP responses as well.
"""

from __future__ import annotations

import functools
import json
import math
import re
import unicodedata

import botocore.model

# AWS-wide errors any operation may return although the model does not declare them per operation.
COMMON_ERROR_CODES = frozenset({
    "MissingAuthenticationTokenException", "UnrecognizedClientException", "InvalidSignatureException",
    "IncompleteSignatureException", "SerializationException", "UnknownOperationException",
    "NotImplementedException", "RequestEntityTooLargeException", "ThrottlingException",
    "AccessDeniedException", "InternalServerException", "ValidationException",
})
# Output limits of the model that no real value can meet, so they are not checked: ConfiguredTableAssociationArn
# allows 100 characters, but its own pattern (`...:<account>:configuredtableassociation/<membership>/<id>`) is 142
# characters long with the UUIDs every id is (and AWS's own association ARNs are longer still).
UNSATISFIABLE_LIMITS = frozenset({("ConfiguredTableAssociationArn", "max")})
REQUEST_ID_HEADER = "x-amzn-RequestId"
ERROR_TYPE_HEADER = "x-amzn-ErrorType"
_NON_BODY_LOCATIONS = frozenset({"header", "headers", "headerPrefix", "statusCode"})
_NON_FINITE = frozenset({"NaN", "Infinity", "-Infinity"})  # how JSON protocols spell non-finite doubles
_HOOK_ID = "opencleanrooms-conformance-check"
_UNICODE_PROPERTY = re.compile(r"\\p\{(\w+)\}")


def _header(headers, name: str):
    """Case-insensitive lookup: callers may pass plain dicts, not only botocore's HeadersDict."""
    return next((value for key, value in (headers or {}).items() if key.lower() == name.lower()), None)


@functools.cache
def _category_ranges() -> dict[str, str]:
    """Unicode general category -> regex class body, so ``\\p{L}``-style model patterns work in ``re``."""
    spans: dict[str, list[list[int]]] = {}
    for cp in range(0x110000):
        runs = spans.setdefault(unicodedata.category(chr(cp)), [])
        if runs and runs[-1][1] == cp - 1:
            runs[-1][1] = cp
        else:
            runs.append([cp, cp])
    return {cat: "".join(f"\\U{a:08x}-\\U{b:08x}" for a, b in runs) for cat, runs in spans.items()}


def _translate_pattern(pattern: str) -> str:
    """Rewrite ``\\p{Cat}`` (unsupported by ``re``) into explicit ranges, in or outside a ``[...]`` class."""
    out, i, in_class = [], 0, False
    while i < len(pattern):
        m = _UNICODE_PROPERTY.match(pattern, i)
        if m:
            body = "".join(v for k, v in _category_ranges().items() if k.startswith(m.group(1)))
            out.append(body if in_class else f"[{body}]")
            i = m.end()
            continue
        step = 2 if pattern[i] == "\\" else 1
        if pattern[i] == "[" and not in_class:
            in_class = True
        elif pattern[i] == "]" and in_class:
            in_class = False
        out.append(pattern[i:i + step])
        i += step
    return "".join(out)


@functools.cache
def _compile(pattern: str):
    """Model patterns are ECMAScript-style and matched with search semantics; None if untranslatable."""
    for candidate in (pattern, _translate_pattern(pattern)):
        try:
            return re.compile(candidate, re.ASCII)
        except re.error:
            continue
    return None


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _body_members(shape: botocore.model.StructureShape) -> dict:
    """JSON key -> (member name, shape) for members serialized in the body (not headers/status)."""
    return {m.serialization.get("name", name): (name, m) for name, m in shape.members.items()
            if m.serialization.get("location") not in _NON_BODY_LOCATIONS}


def check_output(shape: botocore.model.Shape, value, path: str = "$") -> list[str]:
    """Strictly check a decoded JSON value against a model shape; return problems with JSON paths."""
    t, meta, problems = shape.type_name, shape.metadata, []
    if value is None:
        return [f"{path}: null (omit the member instead)"]
    if meta.get("document"):
        return []
    if t == "structure":
        if not isinstance(value, dict):
            return [f"{path}: expected object for {shape.name}, got {type(value).__name__}"]
        members = _body_members(shape)
        problems += [f"{path}: unknown key {key!r} for {shape.name}" for key in value if key not in members]
        names = {name: key for key, (name, _) in members.items()}
        for required in shape.required_members:
            if required in names and value.get(names[required]) is None:
                problems.append(f"{path}: missing required member {names[required]!r} of {shape.name}")
        if meta.get("union"):
            set_keys = [k for k in value if k in members and value[k] is not None]
            if len(set_keys) != 1:
                problems.append(f"{path}: union {shape.name} must have exactly one member set, got {set_keys}")
        for key, item in value.items():
            if key in members and not (item is None and members[key][0] in shape.required_members):
                problems += check_output(members[key][1], item, f"{path}.{key}")
        return problems
    if t == "list":
        if not isinstance(value, list):
            return [f"{path}: expected array for {shape.name}, got {type(value).__name__}"]
        for i, item in enumerate(value):
            problems += check_output(shape.member, item, f"{path}[{i}]")
    elif t == "map":
        if not isinstance(value, dict):
            return [f"{path}: expected object (map) for {shape.name}, got {type(value).__name__}"]
        for key, item in value.items():
            problems += check_output(shape.key, key, f"{path}<key {key!r}>")
            problems += check_output(shape.value, item, f"{path}[{json.dumps(key)}]")
    elif t in ("string", "blob"):
        if not isinstance(value, str):
            return [f"{path}: expected string for {shape.name}, got {type(value).__name__} {value!r}"]
        if meta.get("enum") and value not in meta["enum"]:
            problems.append(f"{path}: {value!r} is not a {shape.name} value {sorted(meta['enum'])}")
        regex = _compile(meta["pattern"]) if "pattern" in meta and t == "string" else None
        if regex is not None and not regex.search(value):
            problems.append(f"{path}: {value!r} does not match {shape.name} pattern {meta['pattern']!r}")
    elif t in ("integer", "long"):
        if not isinstance(value, int) or isinstance(value, bool):
            return [f"{path}: expected integer for {shape.name}, got {type(value).__name__} {value!r}"]
    elif t in ("double", "float"):
        if not (_is_number(value) or value in _NON_FINITE):
            return [f"{path}: expected number for {shape.name}, got {type(value).__name__} {value!r}"]
        if isinstance(value, str):
            return []
    elif t == "boolean":
        if not isinstance(value, bool):
            return [f"{path}: expected boolean for {shape.name}, got {type(value).__name__} {value!r}"]
    elif t == "timestamp":
        fmt = shape.serialization.get("timestampFormat", "unixTimestamp")
        ok = (_is_number(value) and math.isfinite(value)) if fmt == "unixTimestamp" else isinstance(value, str)
        if not ok:
            return [f"{path}: expected {fmt} timestamp for {shape.name}, got {type(value).__name__} {value!r}"]
    else:
        return [f"{path}: checker does not know shape type {t!r} ({shape.name})"]
    if t == "blob":  # limits apply to the decoded bytes, not the base64 text
        return problems
    sized = t in ("string", "list", "map")
    size, what = (len(value), "length") if sized else (value, "value")
    if "min" in meta and size < meta["min"]:
        problems.append(f"{path}: {what} {size} below min {meta['min']} of {shape.name}")
    if "max" in meta and size > meta["max"] and (shape.name, "max") not in UNSATISFIABLE_LIMITS:
        problems.append(f"{path}: {what} {size} above max {meta['max']} of {shape.name}")
    return problems


def _json_object(body_bytes: bytes, problems: list[str]):
    try:
        body = json.loads(body_bytes or b"")
    except ValueError as exc:
        problems.append(f"$: body is not JSON ({exc}): {body_bytes[:200]!r}")
        return None
    if not isinstance(body, dict):
        problems.append(f"$: body must be a JSON object, got {type(body).__name__}")
        return None
    return body


def check_success(operation_model: botocore.model.OperationModel, status: int, body_bytes: bytes) -> list[str]:
    """Status equals the modeled responseCode; body matches the output shape exactly."""
    problems = []
    expected = operation_model.http.get("responseCode", 200)
    if status != expected:
        problems.append(f"status {status} != modeled responseCode {expected}")
    shape = operation_model.output_shape
    if shape is not None and shape.serialization.get("payload"):
        shape = shape.members[shape.serialization["payload"]]
        if shape.type_name != "structure":
            return problems  # raw blob/string payload: nothing JSON to check
    if status == 204 or shape is None or not _body_members(shape):
        if status == 204 and body_bytes:
            problems.append(f"$: 204 response must have an empty body, got {body_bytes[:200]!r}")
        elif body_bytes.strip() and body_bytes.strip() != b"{}":
            problems.append(f"$: output has no body members; body must be empty or {{}}, got {body_bytes[:200]!r}")
        return problems
    body = _json_object(body_bytes, problems)
    return problems if body is None else problems + check_output(shape, body)


def check_error(operation_model: botocore.model.OperationModel, status: int, headers, body_bytes: bytes) -> list[str]:
    """Error type header, message, declared-or-common code, modeled status and exact error-shape body."""
    problems = []
    error_type = _header(headers, ERROR_TYPE_HEADER)
    code = (error_type or "").split(":", 1)[0].strip()
    if not code:
        problems.append(f"missing or empty {ERROR_TYPE_HEADER} header")
    body = _json_object(body_bytes, problems)
    if body is not None:
        if "Message" in body and "message" not in body:
            body = {("message" if k == "Message" else k): v for k, v in body.items()}
        if not isinstance(body.get("message"), str):
            problems.append("$: error body needs a string 'message'")
    if not code:
        return problems
    declared = {s.error_code for s in operation_model.error_shapes}
    if code not in declared and code not in COMMON_ERROR_CODES:
        problems.append(f"error code {code!r} is neither declared by {operation_model.name} nor a common AWS error")
    shape = operation_model.service_model.shape_for_error_code(code)
    if shape is not None:
        modeled = shape.metadata.get("error", {}).get("httpStatusCode")
        if modeled is not None and status != modeled:
            problems.append(f"status {status} != modeled httpStatusCode {modeled} of {code}")
        if body is not None:
            problems += check_output(shape, body)
    return problems


def check_response(operation_model: botocore.model.OperationModel, status: int, headers, body_bytes: bytes) -> list[str]:
    """All problems of one raw HTTP response (success or error) for ``operation_model``."""
    problems = [] if _header(headers, REQUEST_ID_HEADER) else [f"missing or empty {REQUEST_ID_HEADER} header"]
    if status >= 400:
        return problems + check_error(operation_model, status, headers, body_bytes)
    return problems + check_success(operation_model, status, body_bytes or b"")


def assert_conforms(operation_model, status: int, headers, body_bytes: bytes) -> None:
    """Raise AssertionError listing every problem, if there are any."""
    problems = check_response(operation_model, status, headers, body_bytes)
    if problems:
        raise AssertionError(f"{operation_model.name}: HTTP {status} response does not conform to the model:\n  "
                             + "\n  ".join(problems))


def install(client):
    """Check every response ``client`` receives; idempotent (fixed unique_id) and O(1).

    Hooks ``response-received``: it fires once per HTTP attempt, so responses botocore retries away are
    checked too (``after-call`` sees only the final one), and a handler's exception propagates out of the
    boto3 call (it also stops further retries). Short-circuited calls (``before-call`` stubs) are skipped.
    """
    service_model = client.meta.service_model

    def on_response(response_dict=None, **_):
        if response_dict is None:  # connection error: no response to check
            return
        op = service_model.operation_model(response_dict["context"]["operation_name"])
        body = response_dict.get("body")
        assert_conforms(op, response_dict["status_code"], response_dict["headers"],
                        body if isinstance(body, bytes) else b"")

    client.meta.events.register(f"response-received.{service_model.service_id.hyphenize()}",
                                on_response, unique_id=_HOOK_ID)
    return client
