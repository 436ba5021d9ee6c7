"""SigV4 over real HTTP: every way a request can fail authentication, and that a failed request changes nothing.

Each case builds a CreateCollaboration for a fresh victim account, signs it with botocore's signer, then breaks
exactly one thing (before or after signing) and sends the bytes with ``http.client``. The unbroken request is
sent too, as a control, so that a case cannot pass merely because the harness signs badly.
"""

from __future__ import annotations

import datetime
import http.client
import json
from dataclasses import dataclass, field, replace
from unittest import mock

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from opencleanrooms.protocol.model import load_service_model
from opencleanrooms.storage import credentials as credential_store
from tests.support import conformance
from tests.support.server import Account

MODEL = load_service_model()
CREATE = MODEL.operation_model("CreateCollaboration")
LIST = MODEL.operation_model("ListCollaborations")
MISMATCH = ("The request signature we calculated does not match the signature you provided. Check your AWS Secret "
            "Access Key and signing method. Consult the service documentation for details.")


@dataclass(frozen=True)
class Wire:
    """What goes on the wire; `headers` include the signature once signed."""
    method: str
    path: str
    query: str = ""
    body: bytes = b""
    headers: dict = field(default_factory=dict)

    def target(self) -> str:
        return self.path + (f"?{self.query}" if self.query else "")

    def with_headers(self, **changes) -> Wire:
        headers = dict(self.headers)
        for name, value in changes.items():
            name = name.replace("_", "-")
            for existing in [k for k in headers if k.lower() == name.lower()]:
                del headers[existing]
            if value is not None:
                headers[name] = value
        return replace(self, headers=headers)


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict
    body: bytes

    @property
    def code(self) -> str | None:
        return self.headers.get("x-amzn-errortype")

    def json(self):
        return json.loads(self.body)


def sign(server, wire: Wire, key: str, secret: str, *, region: str = "us-east-1", service: str = "cleanrooms",
         when: datetime.datetime | None = None) -> Wire:
    request = AWSRequest(method=wire.method, url=server.endpoint + wire.target(), data=wire.body,
                         headers={"Content-Type": "application/json", **wire.headers})
    signer = SigV4Auth(Credentials(key, secret), service, region)
    if when is None:
        signer.add_auth(request)
    else:
        with mock.patch("botocore.auth.get_current_datetime", return_value=when):
            signer.add_auth(request)
    return replace(wire, headers=dict(request.headers.items()))


def send(server, wire: Wire) -> Reply:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.request(wire.method, wire.target(), body=wire.body, headers=wire.headers)
        response = conn.getresponse()
        reply = Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
    finally:
        conn.close()
    assert reply.headers.get("x-amzn-requestid"), reply
    return reply


def forged_create(name: str) -> Wire:
    body = {"members": [], "name": name, "creatorMemberAbilities": ["CAN_QUERY"], "creatorDisplayName": "forger",
            "queryLogStatus": "DISABLED"}
    return Wire("POST", "/collaborations", body=json.dumps(body).encode())


def names(server, account) -> list[str]:
    reply = send(server, sign(server, Wire("GET", "/collaborations"), account.access_key_id,
                              account.secret_access_key))
    assert reply.status == 200, reply
    assert conformance.check_response(LIST, reply.status, reply.headers, reply.body) == []
    return [c["name"] for c in reply.json()["collaborationList"]]


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


def _swap_byte(body: bytes) -> bytes:
    return body.replace(b'"forger"', b'"forgeR"')


# name -> (break(server, account, wire) -> wire on the wire, expected status, code, message prefix or None)
CASES = {
    "missing-authorization": (
        lambda s, a, w: sign(s, w, a.access_key_id, a.secret_access_key).with_headers(Authorization=None),
        403, "MissingAuthenticationTokenException", "Missing Authentication Token"),
    "unknown-key": (
        lambda s, a, w: sign(s, w, "AKIANOSUCHKEY0000001", a.secret_access_key),
        403, "UnrecognizedClientException", "The security token included in the request is invalid."),
    "wrong-secret": (
        lambda s, a, w: sign(s, w, a.access_key_id, a.secret_access_key + "x"),
        403, "InvalidSignatureException", MISMATCH),
    "tampered-body": (
        lambda s, a, w: replace(sign(s, w, a.access_key_id, a.secret_access_key), body=_swap_byte(w.body)),
        403, "InvalidSignatureException", MISMATCH),
    "tampered-body-longer": (
        lambda s, a, w: replace(sign(s, w, a.access_key_id, a.secret_access_key), body=w.body + b" "),
        403, "InvalidSignatureException", MISMATCH),
    "tampered-path": (
        lambda s, a, w: replace(sign(s, replace(w, path="/memberships"), a.access_key_id, a.secret_access_key),
                                path="/collaborations"),
        403, "InvalidSignatureException", MISMATCH),
    "tampered-query-added": (
        lambda s, a, w: replace(sign(s, w, a.access_key_id, a.secret_access_key), query="x=1"),
        403, "InvalidSignatureException", MISMATCH),
    "tampered-query-changed": (
        lambda s, a, w: replace(sign(s, replace(w, query="x=1"), a.access_key_id, a.secret_access_key),
                                query="x=2"),
        403, "InvalidSignatureException", MISMATCH),
    "tampered-method": (
        lambda s, a, w: replace(sign(s, replace(w, method="PUT"), a.access_key_id, a.secret_access_key),
                                method="POST"),
        403, "InvalidSignatureException", MISMATCH),
    "tampered-signed-header": (
        lambda s, a, w: sign(s, w.with_headers(X_Custom="a"), a.access_key_id,
                             a.secret_access_key).with_headers(X_Custom="b"),
        403, "InvalidSignatureException", MISMATCH),
    "dropped-signed-header": (
        lambda s, a, w: sign(s, w.with_headers(X_Custom="a"), a.access_key_id,
                             a.secret_access_key).with_headers(X_Custom=None),
        403, "InvalidSignatureException", MISMATCH),
    "tampered-content-type": (
        lambda s, a, w: sign(s, w, a.access_key_id, a.secret_access_key).with_headers(
            Content_Type="application/x-amz-json-1.1"),
        403, "InvalidSignatureException", MISMATCH),
    "tampered-date": (
        lambda s, a, w: sign(s, w, a.access_key_id, a.secret_access_key).with_headers(
            X_Amz_Date=(utcnow() - datetime.timedelta(seconds=30)).strftime("%Y%m%dT%H%M%SZ")),
        403, "InvalidSignatureException", None),
    "expired-10-minutes": (
        lambda s, a, w: sign(s, w, a.access_key_id, a.secret_access_key,
                             when=utcnow() - datetime.timedelta(minutes=10)),
        403, "InvalidSignatureException", "Signature expired: "),
    "future-10-minutes": (
        lambda s, a, w: sign(s, w, a.access_key_id, a.secret_access_key,
                             when=utcnow() + datetime.timedelta(minutes=10)),
        403, "InvalidSignatureException", "Signature not yet current: "),
    "wrong-region": (
        lambda s, a, w: sign(s, w, a.access_key_id, a.secret_access_key, region="eu-west-1"),
        403, "InvalidSignatureException", "Credential should be scoped to a valid region."),
    "wrong-service": (
        lambda s, a, w: sign(s, w, a.access_key_id, a.secret_access_key, service="iam"),
        403, "InvalidSignatureException", "Credential should be scoped to correct service: 'cleanrooms'."),
    "malformed-authorization": (
        lambda s, a, w: sign(s, w, a.access_key_id, a.secret_access_key).with_headers(
            Authorization="AWS4-HMAC-SHA256 garbage"),
        400, "IncompleteSignatureException", "Authorization header requires 'Credential' parameter."),
    "wrong-algorithm": (
        lambda s, a, w: (lambda signed: signed.with_headers(
            Authorization=signed.headers["Authorization"].replace("AWS4-HMAC-SHA256", "AWS4-HMAC-SHA512")))(
            sign(s, w, a.access_key_id, a.secret_access_key)),
        400, "IncompleteSignatureException", "Unsupported AWS 'algorithm': 'AWS4-HMAC-SHA512'."),
    "credential-scope-too-short": (
        lambda s, a, w: (lambda signed: signed.with_headers(
            Authorization=signed.headers["Authorization"].replace("/cleanrooms/aws4_request", "/cleanrooms")))(
            sign(s, w, a.access_key_id, a.secret_access_key)),
        400, "IncompleteSignatureException", "Credential must have exactly 5 slash-delimited elements"),
    "missing-x-amz-date": (
        lambda s, a, w: sign(s, w, a.access_key_id, a.secret_access_key).with_headers(X_Amz_Date=None),
        400, "IncompleteSignatureException", None),
    "other-accounts-secret": (
        lambda s, a, w: sign(s, w, a.access_key_id, s.new_account().secret_access_key),
        403, "InvalidSignatureException", MISMATCH),
    "session-token": (
        lambda s, a, w: sign(s, w.with_headers(X_Amz_Security_Token="FwoGZXIvYXdzEJr"), a.access_key_id,
                             a.secret_access_key),
        403, "UnrecognizedClientException", None),
    "presigned-query": (
        lambda s, a, w: replace(w, query="X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=x&X-Amz-Signature=y"),
        400, "IncompleteSignatureException", None),
}


def test_control_the_unbroken_request_succeeds(server):
    victim = server.new_account()
    reply = send(server, sign(server, forged_create("control"), victim.access_key_id, victim.secret_access_key))
    assert reply.status == 200, reply
    assert conformance.check_response(CREATE, reply.status, reply.headers, reply.body) == []
    assert names(server, victim) == ["control"]


@pytest.mark.parametrize("case", list(CASES))
def test_bad_authentication_is_refused_without_side_effect(server, case):
    breaker, status, code, message = CASES[case]
    victim = server.new_account()
    assert names(server, victim) == []
    reply = send(server, breaker(server, victim, forged_create(f"forged {case}")))
    assert (reply.status, reply.code) == (status, code), (reply.status, reply.headers, reply.body)
    assert reply.headers.get("content-type") == "application/json"
    body = reply.json()
    assert list(body) == ["message"], body
    if message is not None:
        assert body["message"].startswith(message), body["message"]
    assert conformance.check_error(CREATE, reply.status, reply.headers, reply.body) == []
    assert names(server, victim) == []


def test_refused_requests_touch_no_other_account_either(server):
    """A forged create signed with a key nobody owns must not land in some other (e.g. the first) account."""
    watcher = server.new_account()
    before = names(server, watcher)
    reply = send(server, sign(server, forged_create("nobody"), "AKIANOSUCHKEY0000002", "secret"))
    assert (reply.status, reply.code) == (403, "UnrecognizedClientException")
    assert names(server, watcher) == before


def test_the_account_comes_only_from_the_access_key(server):
    a, b = server.new_account(), server.new_account()
    created = send(server, sign(server, forged_create("only-a"), a.access_key_id, a.secret_access_key))
    assert created.status == 200, created
    arn = created.json()["collaboration"]["arn"]
    assert arn.split(":")[4] == a.account_id
    assert created.json()["collaboration"]["creatorAccountId"] == a.account_id
    assert names(server, a) == ["only-a"]
    assert names(server, b) == []
    # Nothing else in the request can choose the account: not a header (signed or not), not the query.
    spoofed = Wire("GET", "/collaborations", query=f"accountId={a.account_id}",
                   headers={"X-Amz-Account-Id": a.account_id, "X-Amz-Source-Account": a.account_id})
    reply = send(server, sign(server, spoofed, b.access_key_id, b.secret_access_key).with_headers(
        X_Amzn_Account=a.account_id))
    assert reply.status == 200 and reply.json() == {"collaborationList": []}, reply
    # A second key of the same account sees the same resources.
    second = Account(a.account_id, "AKIASECOND" + a.access_key_id[-10:], "second-secret")
    with server.db.write() as conn:
        credential_store.put(conn, second.access_key_id, second.secret_access_key, second.account_id)
    assert names(server, second) == ["only-a"]
