"""Pre-signed raw HTTP/1.1 requests.

Signing with botocore costs client CPU (~0.1-0.3 ms), which on a small machine shared with the server would be
charged to the server's figures. A SigV4 signature stays valid for 5 minutes, so each distinct request is signed
once per measured batch and its bytes are replayed over keep-alive connections.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import urlencode

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

REGION = "us-east-1"


@dataclass(frozen=True)
class Endpoint:
    """A server under test: where it listens and the key to sign with."""

    name: str  # "ours", "moto", "bare", ...
    host: str
    port: int
    access_key_id: str
    secret_access_key: str

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


def sign(endpoint: Endpoint, method: str, path: str, query: dict | None = None, body: dict | None = None) -> bytes:
    """The complete wire bytes of one SigV4-signed request (HTTP/1.1, keep-alive)."""
    qs = urlencode(query or {})
    target = path + (f"?{qs}" if qs else "")
    data = json.dumps(body, separators=(",", ":")).encode() if body is not None else b""
    headers = {"Content-Type": "application/json"} if body is not None else {}
    request = AWSRequest(method=method, url=endpoint.url + target, data=data, headers=headers)
    SigV4Auth(Credentials(endpoint.access_key_id, endpoint.secret_access_key), "cleanrooms", REGION).add_auth(request)
    lines = [f"{method} {target} HTTP/1.1", f"Host: {endpoint.host}:{endpoint.port}"]
    lines += [f"{k}: {v}" for k, v in request.headers.items() if k.lower() != "host"]
    lines.append(f"Content-Length: {len(data)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + data


def list_memberships(endpoint: Endpoint, max_results: int = 100) -> bytes:
    return sign(endpoint, "GET", "/memberships", {"maxResults": max_results})


def list_collaborations(endpoint: Endpoint, max_results: int = 100) -> bytes:
    return sign(endpoint, "GET", "/collaborations", {"maxResults": max_results})


COLLABORATION_BODY = {
    "name": "bench", "description": "benchmark collaboration", "creatorDisplayName": "Bench",
    "creatorMemberAbilities": ["CAN_QUERY", "CAN_RECEIVE_RESULTS"], "queryLogStatus": "DISABLED", "members": [],
}


def create_collaboration(endpoint: Endpoint, name: str = "bench") -> bytes:
    return sign(endpoint, "POST", "/collaborations", body=dict(COLLABORATION_BODY, name=name))


def create_membership(endpoint: Endpoint, collaboration_id: str) -> bytes:
    return sign(endpoint, "POST", "/memberships",
                body={"collaborationIdentifier": collaboration_id, "queryLogStatus": "DISABLED"})
