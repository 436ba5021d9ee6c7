"""Signed raw HTTP: exactly these bytes on the wire, signed with botocore's SigV4 signer.

boto3 refuses or repairs most hostile requests (bad types, unknown keys, odd paths, bodies on GET), so fuzz and
attack tests build requests by hand, sign them with ``botocore.auth.SigV4Auth`` and send them with
``http.client``. Nothing here interprets responses beyond lower-casing header names.
"""

from __future__ import annotations

import http.client
import json
from dataclasses import dataclass

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

REGION = "us-east-1"
# Words that must never appear in an error body: they would mean internals (stack traces, SQL, paths) leaked.
LEAKS = ("Traceback", "sqlalchemy", "SQLAlchemy", "sqlite", "/work/", ".py\"", 'File "', "/home/", "/usr/", "/tmp/")
_DEFAULT = object()


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]  # lower-cased names
    body: bytes

    def json(self):
        return json.loads(self.body)

    @property
    def error_type(self) -> str | None:
        value = self.headers.get("x-amzn-errortype")
        return value.split(":", 1)[0].strip() if value is not None else None

    def describe(self, limit: int = 400) -> str:
        return f"HTTP {self.status} {self.error_type or ''} {self.body[:limit]!r}"


def signed_headers(account, method: str, url: str, body: bytes, headers: dict | None,
                   region: str = REGION) -> dict[str, str]:
    """The headers to send: the caller's plus Host, X-Amz-Date and Authorization (SigV4, service cleanrooms)."""
    request = AWSRequest(method=method, url=url, data=body, headers=dict(headers or {}))
    SigV4Auth(Credentials(account.access_key_id, account.secret_access_key), "cleanrooms", region).add_auth(request)
    return dict(request.headers.items())


def send(port: int, account, method: str, path: str, *, query: str = "", body: bytes | str = b"",
         headers: dict | None = None, content_type=_DEFAULT, sign: bool = True, timeout: float = 30.0,
         chunked: bool = False) -> Reply:
    """Send one request to 127.0.0.1:`port`; `path` and `query` go on the wire exactly as given.

    `content_type` defaults to application/json; None sends no Content-Type at all.
    """
    if isinstance(body, str):
        body = body.encode("utf-8")
    target = path + (f"?{query}" if query else "")
    base = {} if content_type is None else {"Content-Type": "application/json" if content_type is _DEFAULT
                                             else content_type}
    base.update(headers or {})
    send_headers = signed_headers(account, method, f"http://127.0.0.1:{port}{target}", body, base) if sign else base
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        if chunked:
            chunks = (body[i:i + 65536] for i in range(0, len(body), 65536))
            conn.request(method, target, body=chunks, headers=send_headers, encode_chunked=True)
        else:
            conn.request(method, target, body=body, headers=send_headers)
        response = conn.getresponse()
        return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
    finally:
        conn.close()


def leaked(reply: Reply) -> list[str]:
    """Internals an error body gives away (empty when clean)."""
    if reply.status < 400:
        return []
    text = reply.body.decode("utf-8", "replace")
    return [word for word in LEAKS if word in text]
