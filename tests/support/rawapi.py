"""A tiny model-driven client over signed raw HTTP: cheap to create (no boto3 client per account), exact on the
wire, and every answer checked against the model. Used where tests need many accounts per test."""

from __future__ import annotations

import re

from tests.support import conformance, wire
from tests.support.fuzzgen import MODEL, serialize

# Constraints of the model that no answer can meet, so not held against the server. ConfiguredTableAssociationArn
# has at most 100 characters, but its own pattern (`...:<account>:configuredtableassociation/<membership id>/<id>`)
# needs 142 with the UUIDs every id is.
UNSATISFIABLE = (re.compile(r"length \d+ above max 100 of ConfiguredTableAssociationArn$"),)


def model_problems(op, reply: wire.Reply) -> list[str]:
    """What in a raw answer does not conform to the model (``conformance.check_response``), but for
    ``UNSATISFIABLE`` constraints."""
    return [p for p in conformance.check_response(op, reply.status, reply.headers, reply.body)
            if not any(u.search(p) for u in UNSATISFIABLE)]


class ApiError(Exception):
    def __init__(self, operation: str, reply: wire.Reply) -> None:
        self.operation = operation
        self.reply = reply
        self.status = reply.status
        self.code = reply.error_type
        self.body = reply.json() if reply.body else {}
        super().__init__(f"{operation}: {reply.describe()}")


class RawClient:
    def __init__(self, port: int, account) -> None:
        self.port = port
        self.account = account
        self.id = account.account_id

    def send(self, operation: str, **params) -> wire.Reply:
        """Call `operation` with model member names; return the checked raw reply (success or error)."""
        op = MODEL.operation_model(operation)
        method, path, query, body = serialize(op, params)
        reply = wire.send(self.port, self.account, method, path, query=query, body=body)
        problems = model_problems(op, reply)
        assert not problems, f"{operation}: answer does not conform to the model: {problems}"
        assert not wire.leaked(reply), reply.describe()
        return reply

    def __call__(self, operation: str, **params) -> dict:
        """Call and return the decoded output; an error raises ApiError."""
        reply = self.send(operation, **params)
        if reply.status >= 300:
            raise ApiError(operation, reply)
        return reply.json() if reply.body else {}

    def pages(self, operation: str, key: str, **params) -> list:
        items, token = [], None
        while True:
            page = self(operation, **params, **({"nextToken": token} if token else {}))
            items += page[key]
            token = page.get("nextToken")
            if not token:
                return items
