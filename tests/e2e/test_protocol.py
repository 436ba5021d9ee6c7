"""The rest-json wire over real HTTP: routing, parsing, validation, error shapes, status codes and headers.

Requests are built by hand and signed with botocore's SigV4 signer, then sent with ``http.client`` so that the
exact path, query and body bytes are under the test's control (boto3 would refuse or fix most of them). Every
response goes through ``Reply`` checks (request id present; error bodies leak no internals) and, where an
operation applies, through the model conformance checker.
"""

from __future__ import annotations

import datetime
import http.client
import json
import re
from urllib.parse import quote

import botocore
import botocore.exceptions
import botocore.validate
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from opencleanrooms.protocol.model import load_service_model
from opencleanrooms.services.registry import load_all
from tests.support import conformance
from tests.support.builders import create_collaboration, join, member
from tests.support.wire import Reply, leaked, send

MODEL = load_service_model()
IMPLEMENTED = frozenset(load_all())
UUID = "00000000-0000-4000-8000-000000000000"
ACCOUNT = "123456789012"
EIGHT_MIB = 8 * 1024 * 1024


# ---------------------------------------------------------------------------------------------------- raw HTTP


def raw(server, account, method: str, path: str, *, query: str = "", body: bytes | str = b"",
        headers: dict | None = None, chunked: bool = False) -> Reply:
    """Sign (SigV4, us-east-1) and send exactly these bytes; every reply has a request id and leaks nothing."""
    reply = send(server.port, account, method, path, query=query, body=body, headers=headers, chunked=chunked)
    assert reply.headers.get("x-amzn-requestid"), f"no x-amzn-RequestId on {method} {path}: {reply.describe()}"
    assert not leaked(reply), f"error body leaks {leaked(reply)}: {reply.body[:500]!r}"
    return reply


def conforms(operation: str, reply: Reply) -> None:
    problems = conformance.check_response(MODEL.operation_model(operation), reply.status, reply.headers,
                                          reply.body)
    assert problems == [], problems


def assert_error(reply: Reply, status: int, code: str, operation: str | None = None) -> dict:
    """Exact status and code, in both header and JSON body shape; returns the decoded body."""
    assert (reply.status, reply.error_type) == (status, code), (reply.status, reply.headers, reply.body[:500])
    assert reply.headers.get("content-type") == "application/json"
    body = reply.json()
    assert isinstance(body, dict) and isinstance(body.get("message"), str) and body["message"], body
    if operation is not None:
        conforms(operation, reply)
    return body


def assert_validation(reply: Reply, operation: str, fields: list[str]) -> dict:
    body = assert_error(reply, 400, "ValidationException", operation)
    assert body["reason"] == "FIELD_VALIDATION_FAILED"
    assert [f["name"] for f in body["fieldList"]] == fields, body
    for entry in body["fieldList"]:
        assert f"at '{entry['name']}' failed to satisfy constraint: " in entry["message"], entry
    n = len(fields)
    assert body["message"] == (f"{n} validation error{'' if n == 1 else 's'} detected: "
                               + "; ".join(f["message"] for f in body["fieldList"]))
    return body


def create_body(**overrides) -> dict:
    body = {"members": [], "name": "wire", "creatorMemberAbilities": ["CAN_QUERY"], "creatorDisplayName": "me",
            "queryLogStatus": "DISABLED"}
    body.update(overrides)
    return body


@pytest.fixture(scope="module")
def acct(server):
    return server.new_account()


@pytest.fixture(scope="module")
def client(server, acct):
    return server.client(acct)


def healthy(server, account) -> None:
    reply = raw(server, account, "GET", "/collaborations")
    assert reply.status == 200, reply
    conforms("ListCollaborations", reply)


# ------------------------------------------------------------------------------- minimal valid model inputs

# Values for patterned strings that no generic candidate satisfies (checked against the pattern below anyway).
SHAPE_VALUES = {
    "AnalysisTemplateArn": f"arn:aws:cleanrooms:us-east-1:{ACCOUNT}:membership/{UUID}/analysistemplate/{UUID}",
    "ConfiguredAudienceModelArn": f"arn:aws:cleanrooms-ml:us-east-1:{ACCOUNT}:configured-audience-model/m-1",
    "IdMappingTableInputReferenceArn": f"arn:aws:entityresolution:us-east-1:{ACCOUNT}:idmappingworkflow/wf",
    "IdNamespaceAssociationInputReferenceArn": f"arn:aws:entityresolution:us-east-1:{ACCOUNT}:idnamespace/ns",
    "RoleArn": f"arn:aws:iam::{ACCOUNT}:role/cleanrooms-test-role",
    "CleanroomsArn": f"arn:aws:cleanrooms:us-east-1:{ACCOUNT}:collaboration/{UUID}",
    "TaggableResourceArn": f"arn:aws:cleanrooms:us-east-1:{ACCOUNT}:collaboration/{UUID}",
}
CANDIDATES = (UUID, ACCOUNT, "name", "col", "abc")


def _minimal(shape, depth: int = 0):
    """A value of `shape` that satisfies every constraint the model states (required members only)."""
    assert depth < 20, f"recursion in {shape.name}"
    meta, kind = shape.metadata, shape.type_name
    if kind == "structure":
        if meta.get("document"):
            return {}
        if meta.get("union"):
            name, first = next(iter(shape.members.items()))
            return {name: _minimal(first, depth + 1)}
        return {name: _minimal(shape.members[name], depth + 1) for name in shape.required_members}
    if kind == "list":
        return [_minimal(shape.member, depth + 1) for _ in range(meta.get("min", 0))]
    if kind == "map":
        return {f"k{i}": _minimal(shape.value, depth + 1) for i in range(meta.get("min", 0))}
    if kind == "string":
        if shape.enum:
            return shape.enum[0]
        lo, hi = meta.get("min", 1), meta.get("max", 10_000)
        pattern = meta.get("pattern")
        options = [SHAPE_VALUES[shape.name]] if shape.name in SHAPE_VALUES else list(CANDIDATES)
        if not pattern:
            options = ["x" * max(lo, 1)]
        for value in options:
            if lo <= len(value) <= hi and (not pattern or re.fullmatch(pattern, value)):
                return value
        raise AssertionError(f"no known-good value for {shape.name} (pattern {pattern!r}, {lo}..{hi}); "
                             "add one to SHAPE_VALUES")
    if kind in ("integer", "long"):
        return max(meta.get("min", 1), 1) if meta.get("max", 1) >= 1 else meta["max"]
    if kind in ("float", "double"):
        return float(meta.get("min", 1))
    if kind == "boolean":
        return False
    if kind == "timestamp":
        return datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)
    if kind == "blob":
        return b"x"
    raise AssertionError(f"unknown shape type {kind} ({shape.name})")


def minimal_input(operation: str) -> dict:
    shape = MODEL.operation_model(operation).input_shape
    return {} if shape is None else _minimal(shape)


def test_generated_inputs_pass_botocores_own_validation():
    validator = botocore.validate.ParamValidator()
    for name in MODEL.operation_names:
        shape = MODEL.operation_model(name).input_shape
        params = minimal_input(name)
        if shape is not None:
            assert set(shape.required_members) <= set(params), name
            report = validator.validate(params, shape)
            assert not report.has_errors(), (name, report.generate_report())


@pytest.mark.parametrize("operation", MODEL.operation_names)
def test_every_model_operation_is_routed(client, operation):
    """Not implemented: 501 NotImplementedException naming it. Implemented: routed to its handler."""
    call = getattr(client, botocore.xform_name(operation))
    try:
        response = call(**minimal_input(operation))
    except botocore.exceptions.ClientError as exc:
        error, status = exc.response["Error"], exc.response["ResponseMetadata"]["HTTPStatusCode"]
        if operation in IMPLEMENTED:
            assert error["Code"] not in ("NotImplementedException", "UnknownOperationException"), error
            assert error["Code"] in {s.error_code for s in MODEL.operation_model(operation).error_shapes}, error
            return
        assert (error["Code"], status) == ("NotImplementedException", 501), exc.response
        assert operation in error["Message"], error
        assert exc.response["ResponseMetadata"]["HTTPHeaders"].get("x-amzn-requestid")
    else:
        assert operation in IMPLEMENTED, f"{operation} answered {response} but is not implemented"


# --------------------------------------------------------------------------------------------- unknown routes


@pytest.mark.parametrize("method,path", [
    ("GET", "/nope"),
    ("POST", "/collaborations/x/y/z"),
    ("PUT", "/collaborations"),
    ("GET", "/"),
    ("GET", "/collaborations//members"),
    ("POST", f"/tags/arn:aws:cleanrooms:us-east-1:{ACCOUNT}:collaboration/{UUID}"),  # '/' must be encoded
])
def test_unknown_routes_are_404_unknown_operation(server, acct, method, path):
    reply = raw(server, acct, method, path, body=b"{}" if method in ("POST", "PUT") else b"")
    body = assert_error(reply, 404, "UnknownOperationException")
    assert list(body) == ["message"]


# -------------------------------------------------------------------------------------- serialization errors


@pytest.mark.parametrize("body", [
    b'{"name": "x",',
    b"{'name': 'x'}",
    b"[]",
    b'[{"name": "x"}]',
    b'"a string"',
    b"null",
    b"42",
    b'{"name": "\xff\xfe"}',
    b'{"name":' + b"[" * 10_000 + b"]" * 10_000 + b"}",
    b"[" * 10_000,
    b'{"a":' * 10_000 + b"1" + b"}" * 10_000,
], ids=["truncated", "single-quotes", "array", "array-of-object", "string", "null", "number", "invalid-utf8",
        "nested-10000", "unclosed-10000", "objects-10000"])
def test_bodies_that_are_not_a_json_object_are_serialization_errors(server, acct, body):
    reply = raw(server, acct, "POST", "/collaborations", body=body)
    assert_error(reply, 400, "SerializationException", "CreateCollaboration")
    healthy(server, acct)


def test_empty_body_is_an_empty_object(server, acct):
    reply = raw(server, acct, "POST", "/collaborations", body=b"")
    assert_validation(reply, "CreateCollaboration",
                      ["members", "name", "creatorMemberAbilities", "creatorDisplayName", "queryLogStatus"])


# ------------------------------------------------------------------------------------------------ validation


@pytest.mark.parametrize("method,path,query,body,operation,fields", [
    ("POST", "/collaborations", "", create_body(name=5), "CreateCollaboration", ["name"]),
    ("POST", "/collaborations", "", create_body(members={}), "CreateCollaboration", ["members"]),
    ("POST", "/collaborations", "", create_body(members=["x"]), "CreateCollaboration", ["members.1.member"]),
    ("POST", "/collaborations", "", create_body(creatorMemberAbilities="CAN_QUERY"), "CreateCollaboration",
     ["creatorMemberAbilities"]),
    ("POST", "/collaborations", "", create_body(isMetricsEnabled="true"), "CreateCollaboration",
     ["isMetricsEnabled"]),
    ("POST", "/collaborations", "", create_body(tags=["a"]), "CreateCollaboration", ["tags"]),
    ("GET", "/collaborations", "maxResults=abc", None, "ListCollaborations", ["maxResults"]),
    ("GET", "/collaborations", "maxResults=1.5", None, "ListCollaborations", ["maxResults"]),
    ("GET", "/memberships", "maxResults=", None, "ListMemberships", ["maxResults"]),
    ("GET", "/collaborations", "maxResults=5_0", None, "ListCollaborations", ["maxResults"]),
    ("GET", "/collaborations", "maxResults=%205", None, "ListCollaborations", ["maxResults"]),
], ids=["name-int", "members-object", "member-string", "abilities-string", "bool-string", "tags-list",
        "maxResults-abc", "maxResults-float", "maxResults-empty", "maxResults-underscore", "maxResults-space"])
def test_wrong_types_are_field_validation_errors(server, acct, method, path, query, body, operation, fields):
    reply = raw(server, acct, method, path, query=query, body=json.dumps(body) if body is not None else b"")
    result = assert_validation(reply, operation, fields)
    assert "Member must be of type " in result["fieldList"][0]["message"]


LONG_NAME = "n" * 101


@pytest.mark.parametrize("method,path,query,body,operation,fields", [
    ("GET", "/collaborations", "maxResults=0", None, "ListCollaborations", ["maxResults"]),
    ("GET", "/collaborations", "maxResults=101", None, "ListCollaborations", ["maxResults"]),
    ("GET", "/collaborations", "maxResults=-1", None, "ListCollaborations", ["maxResults"]),
    ("GET", "/collaborations", "maxResults=99999999999999999999", None, "ListCollaborations", ["maxResults"]),
    ("GET", "/collaborations", "memberStatus=LEFT", None, "ListCollaborations", ["memberStatus"]),
    ("GET", "/collaborations", "memberStatus=active", None, "ListCollaborations", ["memberStatus"]),
    ("GET", "/memberships", "status=INVITED", None, "ListMemberships", ["status"]),
    ("POST", "/collaborations", "", create_body(name=LONG_NAME), "CreateCollaboration", ["name"]),
    ("POST", "/collaborations", "", create_body(name="   "), "CreateCollaboration", ["name"]),
    ("POST", "/collaborations", "", create_body(queryLogStatus="ON"), "CreateCollaboration", ["queryLogStatus"]),
    ("POST", "/collaborations", "", create_body(members=[{"accountId": "abc", "memberAbilities": [],
                                                           "displayName": "x"}]),
     "CreateCollaboration", ["members.1.member.accountId"]),
    ("DELETE", f"/collaborations/{UUID}/member/abc", "", None, "DeleteMember", ["accountId"]),
    ("GET", "/collaborations/not-a-uuid", "", None, "GetCollaboration", ["collaborationIdentifier"]),
    ("GET", "/collaborations/0B7E7D3C-1111-4A4A-9C9C-123456789ABC", "", None, "GetCollaboration",
     ["collaborationIdentifier"]),
    ("GET", "/memberships/not-a-uuid", "", None, "GetMembership", ["membershipIdentifier"]),
    ("GET", "/tags/" + quote("arn:aws:s3:::bucket", safe=""), "", None, "ListTagsForResource",
     ["resourceArn"]),
], ids=["maxResults-0", "maxResults-101", "maxResults-negative", "maxResults-huge", "memberStatus-LEFT",
        "memberStatus-lowercase", "status-INVITED", "name-101", "name-blank", "queryLogStatus-enum",
        "accountId-body", "accountId-label", "uuid-label", "uuid-uppercase", "membership-uuid", "arn-pattern"])
def test_constraint_violations_are_field_validation_errors(server, acct, method, path, query, body, operation,
                                                          fields):
    reply = raw(server, acct, method, path, query=query, body=json.dumps(body) if body is not None else b"")
    assert_validation(reply, operation, fields)


def test_constraint_messages_name_value_and_constraint(server, acct):
    body = assert_validation(raw(server, acct, "GET", "/collaborations", query="maxResults=0"),
                             "ListCollaborations", ["maxResults"])
    assert body["message"] == ("1 validation error detected: Value '0' at 'maxResults' failed to satisfy "
                               "constraint: Member must have value greater than or equal to 1")
    body = assert_validation(raw(server, acct, "GET", "/collaborations", query="memberStatus=LEFT"),
                             "ListCollaborations", ["memberStatus"])
    assert body["fieldList"][0]["message"] == ("Value 'LEFT' at 'memberStatus' failed to satisfy constraint: "
                                               "Member must satisfy enum value set: [INVITED, ACTIVE]")


def test_constraints_the_client_does_not_check_via_boto3(server, acct):
    unchecked = server.client(acct, parameter_validation=False)
    for params, field in (({"maxResults": 0}, "maxResults"), ({"maxResults": 101}, "maxResults"),
                          ({"memberStatus": "LEFT"}, "memberStatus")):
        with pytest.raises(botocore.exceptions.ClientError) as info:
            unchecked.list_collaborations(**params)
        response = info.value.response
        assert (response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]) == \
            ("ValidationException", 400)
        assert response["reason"] == "FIELD_VALIDATION_FAILED"
        assert [f["name"] for f in response["fieldList"]] == [field]
    with pytest.raises(botocore.exceptions.ClientError) as info:
        unchecked.create_collaboration(**create_body(name=LONG_NAME, members=[{"accountId": "abc",
                                                                             "memberAbilities": [],
                                                                             "displayName": "x"}]))
    assert [f["name"] for f in info.value.response["fieldList"]] == ["members.1.member.accountId", "name"]


def test_several_violations_are_one_error_with_several_fields(server, acct):
    reply = raw(server, acct, "GET", "/collaborations", query="maxResults=0&memberStatus=LEFT")
    body = assert_validation(reply, "ListCollaborations", ["maxResults", "memberStatus"])
    assert body["message"].startswith("2 validation errors detected: Value '0' at 'maxResults' ")
    assert "; Value 'LEFT' at 'memberStatus' " in body["message"]

    reply = raw(server, acct, "POST", "/collaborations",
                body=json.dumps({"members": [], "name": LONG_NAME, "creatorMemberAbilities": ["NOPE"],
                                 "queryLogStatus": "ON"}))
    body = assert_validation(reply, "CreateCollaboration", ["name", "creatorMemberAbilities.1.member",
                                                            "creatorDisplayName", "queryLogStatus"])
    assert body["message"].startswith("4 validation errors detected: ")
    by_name = {f["name"]: f["message"] for f in body["fieldList"]}
    assert by_name["creatorDisplayName"] == \
        "Value null at 'creatorDisplayName' failed to satisfy constraint: Member must not be null"


def test_failed_validation_has_no_side_effect(server):
    account = server.new_account()
    raw(server, account, "POST", "/collaborations", body=json.dumps(create_body(name=LONG_NAME)))
    assert raw(server, account, "GET", "/collaborations").json() == {"collaborationList": []}


# ---------------------------------------------------------------------------------------------- request size


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_oversized_body_is_413_with_json_error(server, acct, chunked):
    body = b'{"name": "' + b"x" * (9 * 1024 * 1024) + b'"}'
    reply = raw(server, acct, "POST", "/collaborations", body=body, chunked=chunked)
    assert_error(reply, 413, "RequestEntityTooLargeException", "CreateCollaboration")
    healthy(server, acct)


def test_connection_stays_usable_after_413(server, acct):
    """The unread rest of an oversized body must not be taken for the next request on a kept-alive connection."""
    smuggled = b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"
    body = smuggled * (9 * 1024 * 1024 // len(smuggled) + 1)

    def signed(method, path, payload):
        request = AWSRequest(method=method, url=server.endpoint + path, data=payload,
                             headers={"Content-Type": "application/json"})
        SigV4Auth(Credentials(acct.access_key_id, acct.secret_access_key), "cleanrooms",
                  "us-east-1").add_auth(request)
        return dict(request.headers.items())

    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.request("POST", "/collaborations", body=body, headers=signed("POST", "/collaborations", body))
        first = conn.getresponse()
        assert (first.status, first.getheader("x-amzn-ErrorType")) == (413, "RequestEntityTooLargeException")
        first.read()
        try:
            conn.request("GET", "/collaborations", headers=signed("GET", "/collaborations", b""))
            second = conn.getresponse()
        except (ConnectionError, http.client.RemoteDisconnected):
            return  # closing the connection is a correct answer too
        assert second.status == 200, second.read()[:300]
        assert "collaborationList" in json.loads(second.read())
    finally:
        conn.close()


def test_body_of_exactly_the_limit_is_accepted(server):
    account = server.new_account()
    document = json.dumps(create_body(name="at-the-limit")).encode()
    body = document[:-1] + b" " * (EIGHT_MIB - len(document)) + b"}"
    assert len(body) == EIGHT_MIB
    reply = raw(server, account, "POST", "/collaborations", body=body)
    assert reply.status == 200, reply.body[:500]
    conforms("CreateCollaboration", reply)
    assert reply.json()["collaboration"]["name"] == "at-the-limit"


# --------------------------------------------------------------------------------------- statuses and headers


def test_deletes_are_204_with_an_empty_body(server, party):
    a, b, c = party(), party(), party()
    collaboration = create_collaboration(a, [member(b), member(c)])
    membership = join(b, collaboration["id"])
    for account, path, operation in (
        (b.account, f"/memberships/{membership['id']}", "DeleteMembership"),
        (a.account, f"/collaborations/{collaboration['id']}/member/{c.id}", "DeleteMember"),
        (a.account, f"/collaborations/{collaboration['id']}", "DeleteCollaboration"),
    ):
        reply = raw(server, account, "DELETE", path)
        assert (reply.status, reply.body) == (204, b""), (operation, reply)
        assert reply.headers.get("content-length", "0") == "0"
        assert "x-amzn-errortype" not in reply.headers
        conforms(operation, reply)


def test_tag_and_untag_are_200(server, party):
    a = party()
    arn = create_collaboration(a)["arn"]
    path = "/tags/" + quote(arn, safe="")
    reply = raw(server, a.account, "POST", path, body=json.dumps({"tags": {"k1": "v1", "k2": "v2", "k3": ""}}))
    assert reply.status == 200 and reply.json() == {}, reply
    conforms("TagResource", reply)
    reply = raw(server, a.account, "DELETE", path, query="tagKeys=k1&tagKeys=k3")  # repeated keys: a list
    assert reply.status == 200 and reply.json() == {}, reply
    conforms("UntagResource", reply)
    reply = raw(server, a.account, "GET", path)
    assert (reply.status, reply.json()) == (200, {"tags": {"k2": "v2"}})
    conforms("ListTagsForResource", reply)


@pytest.mark.parametrize("encode", [
    lambda arn: quote(arn, safe=""),
    lambda arn: quote(arn, safe=":"),
    lambda arn: quote(arn, safe="").replace("%3A", "%3a").replace("%2F", "%2f"),
], ids=["botocore-all-encoded", "colon-unencoded", "lowercase-hex"])
def test_percent_encoded_arn_label(server, party, encode):
    a = party()
    arn = create_collaboration(a)["arn"]
    path = "/tags/" + encode(arn)
    reply = raw(server, a.account, "POST", path, body=json.dumps({"tags": {"env": "wire"}}))
    assert reply.status == 200, reply
    conforms("TagResource", reply)
    reply = raw(server, a.account, "GET", path)
    assert (reply.status, reply.json()) == (200, {"tags": {"env": "wire"}})
    assert a.client.list_tags_for_resource(resourceArn=arn)["tags"] == {"env": "wire"}


def test_brackets_in_string_values_are_not_nesting(server):
    """A name of 100 '[' is valid for the model (CollaborationName: 1-100 chars of that pattern)."""
    account = server.new_account()
    reply = raw(server, account, "POST", "/collaborations", body=json.dumps(create_body(name="[" * 100)))
    assert reply.status == 200, reply
    conforms("CreateCollaboration", reply)
    assert reply.json()["collaboration"]["name"] == "[" * 100


def test_request_ids_are_unique(server, acct):
    replies = [raw(server, acct, "GET", "/collaborations"), raw(server, acct, "GET", "/nope"),
               raw(server, acct, "GET", "/collaborations", query="maxResults=0")]
    ids = [r.headers["x-amzn-requestid"] for r in replies]
    assert len(set(ids)) == 3
    assert all(re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", i) for i in ids)


def test_unknown_query_parameters_and_body_members_are_ignored(server):
    account = server.new_account()
    reply = raw(server, account, "POST", "/collaborations", query="foo=bar&maxResults=abc&x",
                body=json.dumps(create_body(name="extra", bogus=1, Name="shadow", collaboration={"id": "x"})))
    assert reply.status == 200, reply
    conforms("CreateCollaboration", reply)
    assert reply.json()["collaboration"]["name"] == "extra"
    reply = raw(server, account, "GET", "/collaborations", query="foo=bar&maxresults=0&memberStatus=ACTIVE&z")
    assert reply.status == 200, reply
    conforms("ListCollaborations", reply)
    reply = raw(server, account, "GET", "/collaborations", body=b"not json at all")  # no body members: ignored
    assert reply.status == 200, reply
    assert [c["name"] for c in reply.json()["collaborationList"]] == ["extra"]


def test_body_cannot_override_uri_labels(server, party):
    a = party()
    mine = create_collaboration(a, name="mine")
    reply = raw(server, a.account, "PATCH", f"/collaborations/{mine['id']}",
                body=json.dumps({"collaborationIdentifier": UUID, "name": "renamed"}))
    assert reply.status == 200, reply
    conforms("UpdateCollaboration", reply)
    assert reply.json()["collaboration"]["id"] == mine["id"]


@pytest.mark.parametrize("method,path,query,body", [
    ("GET", "/collaborations/%ff%fe", "", b""),
    ("GET", "/collaborations/%00", "", b""),
    ("GET", "/collaborations", "maxResults=%FF", b""),  # uppercase hex: botocore signs a URL's query as is
    ("GET", "/collaborations", "nextToken=" + "A" * 10_000, b""),
    ("GET", "/collaborations", "nextToken=%00garbage", b""),
    ("POST", "/collaborations", "", json.dumps(create_body(name="\u0000")).encode()),
    ("POST", "/collaborations", "", json.dumps(create_body(members=[None])).encode()),
    ("POST", "/collaborations", "", json.dumps(create_body(tags={"k": None})).encode()),
    ("POST", "/collaborations", "", b'{"name": 1e999, "members": NaN}'),
    ("POST", "/collaborations", "", b'{"description": "' + b"]" * 5000 + b'", "members": ' + b"[" * 900
     + b"]" * 900 + b"}"),  # closing brackets in a string must not hide real nesting
    ("DELETE", "/tags/" + quote("arn:aws:cleanrooms:us-east-1:123456789012:collaboration/x", safe=""),
     "tagKeys=" + "k" * 300, b""),
], ids=["label-invalid-utf8", "label-nul", "query-invalid-utf8", "huge-token", "garbage-token", "nul-name",
        "null-member", "null-tag", "non-finite-numbers", "hidden-nesting", "long-tag-key"])
def test_hostile_inputs_are_client_errors_that_leak_nothing(server, acct, method, path, query, body):
    reply = raw(server, acct, method, path, query=query, body=body)
    assert 400 <= reply.status < 500, (reply.status, reply.body[:500])
    assert reply.error_type in ("ValidationException", "SerializationException", "ResourceNotFoundException",
                                "AccessDeniedException"), reply
    body = reply.json()
    assert set(body) <= {"message", "reason", "fieldList", "resourceId", "resourceType"}, body


@pytest.mark.parametrize("body", [
    create_body(name="\ud800"),  # allowed by the name pattern, which lists \uD800 literally
    create_body(name="ok\udfff"),
    create_body(name="\u0000\ud800"),  # fails the pattern: the value is echoed in the validation message
    create_body(description="\udbff"),
    create_body(tags={"k": "\ud800"}),
], ids=["name-high", "name-low", "name-invalid", "description", "tag-value"])
def test_unpaired_surrogates_in_json_strings_are_client_errors(server, body):
    """`"\\ud800"` is legal JSON escaping but no Unicode text: a 400 JSON error, never a 500, no side effect."""
    account = server.new_account()
    reply = raw(server, account, "POST", "/collaborations", body=json.dumps(body))  # ASCII-escaped on the wire
    assert reply.status == 400 and reply.error_type in ("SerializationException", "ValidationException"), reply
    assert_error(reply, 400, reply.error_type, "CreateCollaboration")
    assert raw(server, account, "GET", "/collaborations").json() == {"collaborationList": []}
