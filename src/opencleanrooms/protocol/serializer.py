"""Turns operation outputs and errors into rest-json HTTP responses.

Outputs arrive as JSON-ready dicts keyed by model member names (timestamps as epoch seconds). Errors are rendered
as AWS does for rest-json: status from the error shape, `x-amzn-ErrorType: <Code>`, and a JSON body holding
`message` plus the shape's members.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import botocore.model

from opencleanrooms.encoded import EncodedJson
from opencleanrooms.errors import ServiceError

JSON_CONTENT_TYPE = "application/json"


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


def dump_json(value) -> bytes:
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate echoed back in an error message: escape it
        return json.dumps(value, separators=(",", ":")).encode("ascii")


class ResponseSerializer:
    def __init__(self, service_model: botocore.model.ServiceModel) -> None:
        self._error_status = {
            shape.name: shape.metadata["error"]["httpStatusCode"] for shape in service_model.error_shapes
        }
        self._error_members = {shape.name: set(shape.members) for shape in service_model.error_shapes}

    def output(self, op: botocore.model.OperationModel, output: dict | None, request_id: str) -> HttpResponse:
        status = op.http.get("responseCode", 200)
        headers = [("x-amzn-RequestId", request_id)]
        if status == 204:
            return HttpResponse(status, headers, b"")
        headers.append(("Content-Type", JSON_CONTENT_TYPE))
        body = output if isinstance(output, EncodedJson) else dump_json(output or {})
        return HttpResponse(status, headers, body)

    def error(self, error: ServiceError, request_id: str) -> HttpResponse:
        status = self._error_status.get(error.code, error.status or 400)
        allowed = self._error_members.get(error.code)
        body = {"message": error.message}
        for key, value in error.fields.items():
            if allowed is None or key in allowed:
                body[key] = value
        headers = [
            ("x-amzn-RequestId", request_id),
            ("x-amzn-ErrorType", error.code),
            ("Content-Type", JSON_CONTENT_TYPE),
        ]
        return HttpResponse(status, headers, dump_json(body))
