"""Tests for the conformance checker: each check must be able to fail, and install() must fail boto3 calls."""

from __future__ import annotations

import copy
import json

import boto3
import botocore.awsrequest
import botocore.config
import botocore.endpoint
import pytest

from opencleanrooms.protocol.model import load_service_model
from tests.support import conformance

SM = load_service_model()
UUID = "0123abcd-0123-4567-89ab-0123456789ab"
REQ_ID = {"x-amzn-RequestId": "f00d-1"}
VALID_SUMMARY = {
    "id": UUID,
    "arn": f"arn:aws:cleanrooms:us-east-1:123456789012:collaboration/{UUID}",
    "name": "My collaboration",
    "creatorAccountId": "123456789012",
    "creatorDisplayName": "Creator",
    "createTime": 1700000000.123,
    "updateTime": 1700000001,
    "memberStatus": "ACTIVE",
    "analyticsEngine": "SPARK",
}
VALID_LIST = {"collaborationList": [VALID_SUMMARY], "nextToken": "abc"}


def op(name):
    return SM.operation_model(name)


def list_problems(body):
    return conformance.check_output(op("ListCollaborations").output_shape, body)


def with_summary(**changes):
    summary = {**VALID_SUMMARY, **changes}
    return {"collaborationList": [{k: v for k, v in summary.items() if v is not ...}]}


def error(code, status, body, operation="ListCollaborations", headers=None):
    hdrs = {"x-amzn-ErrorType": f"{code}:http://internal.amazon.com/coral/", **REQ_ID, **(headers or {})}
    return conformance.check_response(op(operation), status, hdrs, json.dumps(body).encode())


# ---- success bodies -------------------------------------------------------------------------------------------

def test_valid_list_collaborations_passes():
    assert list_problems(VALID_LIST) == []
    assert list_problems({"collaborationList": []}) == []
    body = json.dumps(VALID_LIST).encode()
    assert conformance.check_response(op("ListCollaborations"), 200, REQ_ID, body) == []


def test_missing_required_top_level_member_fails():
    assert any("missing required member 'collaborationList'" in p for p in list_problems({"nextToken": "x"}))


def test_missing_and_null_required_nested_members_fail():
    problems = list_problems(with_summary(creatorDisplayName=..., name=None))
    assert any("$.collaborationList[0]: missing required member 'creatorDisplayName'" in p for p in problems)
    assert any("missing required member 'name'" in p for p in problems)


def test_null_optional_member_fails():
    assert any("$.nextToken: null" in p for p in list_problems({**VALID_LIST, "nextToken": None}))


def test_unknown_key_fails_top_level_and_nested():
    assert any("$: unknown key 'extra'" in p for p in list_problems({**VALID_LIST, "extra": 1}))
    assert any("$.collaborationList[0]: unknown key 'colour'" in p for p in list_problems(with_summary(colour="red")))


def test_wrong_enum_fails():
    assert any("$.collaborationList[0].memberStatus" in p for p in list_problems(with_summary(memberStatus="active")))


def test_string_where_number_expected_fails():
    shape = SM.shape_for("ServiceQuotaExceededException")
    problems = conformance.check_output(shape, {"message": "m", "quotaName": "q", "quotaValue": "5"})
    assert any("$.quotaValue: expected number" in p for p in problems)
    assert conformance.check_output(shape, {"message": "m", "quotaName": "q", "quotaValue": 5}) == []


def test_timestamp_as_iso_string_fails():
    problems = list_problems(with_summary(createTime="2024-01-01T00:00:00Z"))
    assert any("$.collaborationList[0].createTime: expected unixTimestamp" in p for p in problems)


def test_bool_where_int_or_timestamp_expected_fails():
    integer = next(SM.shape_for(n) for n in SM.shape_names
                   if SM.shape_for(n).type_name == "integer" and not SM.shape_for(n).metadata)
    assert conformance.check_output(integer, 1) == []
    assert any("expected integer" in p for p in conformance.check_output(integer, True))
    assert any("expected integer" in p for p in conformance.check_output(integer, 1.5))
    assert any("updateTime: expected unixTimestamp" in p for p in list_problems(with_summary(updateTime=True)))


def test_string_pattern_and_length_violations_fail():
    problems = list_problems(with_summary(creatorAccountId="abc"))
    assert any("creatorAccountId: 'abc' does not match" in p for p in problems)
    assert any("creatorAccountId: length 3 below min 12" in p for p in problems)
    assert any("name" in p for p in list_problems(with_summary(name="   ")))  # (?!\s*$) lookahead


def test_length_and_range_limits_fail():
    assert any("name: length 101 above max 100" in p for p in list_problems(with_summary(name="x" * 101)))
    epsilon = SM.shape_for("Epsilon")  # integer 1..20
    assert conformance.check_output(epsilon, 20) == []
    assert any("value 21 above max 20" in p for p in conformance.check_output(epsilon, 21))
    assert any("value 0 below min 1" in p for p in conformance.check_output(epsilon, 0))


def test_unicode_property_patterns_are_enforced():
    shape = SM.shape_for("SnowflakeTableName")
    assert conformance.check_output(shape, "tablé_1") == []
    assert any("does not match" in p for p in conformance.check_output(shape, "!!!"))


def test_every_model_pattern_is_enforceable():
    """A pattern ``re`` cannot compile would be skipped silently; make sure none exists in this model."""
    patterns = {SM.shape_for(n).metadata.get("pattern") for n in SM.shape_names} - {None}
    assert patterns and [p for p in patterns if conformance._compile(p) is None] == []


def test_union_needs_exactly_one_member():
    shape = SM.shape_for("TableReference")
    glue = {"tableName": "t", "databaseName": "d"}
    assert conformance.check_output(shape, {"glue": glue}) == []
    two = conformance.check_output(shape, {"glue": glue, "athena": {**glue, "workGroup": "w"}})
    assert any("exactly one member" in p for p in two)
    assert any("exactly one member" in p for p in conformance.check_output(shape, {}))


def test_map_values_are_checked():
    shape = op("ListTagsForResource").output_shape
    assert conformance.check_output(shape, {"tags": {"k": "v"}}) == []
    assert any('$.tags["k"]: expected string' in p for p in conformance.check_output(shape, {"tags": {"k": 1}}))


def test_all_problems_reported_in_one_assertion_with_paths():
    body = json.dumps({"collaborationList": [{**VALID_SUMMARY, "memberStatus": "X", "createTime": "t"}],
                       "bogus": 1}).encode()
    with pytest.raises(AssertionError) as info:
        conformance.assert_conforms(op("ListCollaborations"), 201, {}, body)
    text = str(info.value)
    for needle in ("x-amzn-RequestId", "status 201", "memberStatus", "createTime", "'bogus'"):
        assert needle in text


def test_204_with_body_fails_and_empty_passes():
    delete = op("DeleteCollaboration")
    assert conformance.check_response(delete, 204, REQ_ID, b"") == []
    assert any("204" in p for p in conformance.check_response(delete, 204, REQ_ID, b"{}"))
    assert any("responseCode 204" in p for p in conformance.check_response(delete, 200, REQ_ID, b""))


def test_non_object_or_non_json_body_fails():
    assert conformance.check_response(op("ListCollaborations"), 200, REQ_ID, b"[]") != []
    assert conformance.check_response(op("ListCollaborations"), 200, REQ_ID, b"nope") != []


def test_missing_request_id_fails():
    body = json.dumps(VALID_LIST).encode()
    assert conformance.check_response(op("ListCollaborations"), 200, {"x-amzn-RequestId": ""}, body) != []


# ---- errors ---------------------------------------------------------------------------------------------------

def test_valid_errors_pass():
    assert error("ValidationException", 400, {"message": "bad", "reason": "FIELD_VALIDATION_FAILED",
                                              "fieldList": [{"name": "f", "message": "m"}]}) == []
    assert error("ResourceNotFoundException", 404, {"Message": "gone", "resourceId": UUID,
                                                    "resourceType": "COLLABORATION"}, "GetMembership") == []
    assert error("UnrecognizedClientException", 403, {"message": "bad token"}) == []


def test_error_reason_outside_enum_fails():
    assert any("$.reason" in p for p in error("ValidationException", 400, {"message": "m", "reason": "NOPE"}))


def test_error_field_list_items_need_name_and_message():
    problems = error("ValidationException", 400, {"message": "m", "fieldList": [{"name": "f", "x": 1}]})
    assert any("$.fieldList[0]: missing required member 'message'" in p for p in problems)
    assert any("$.fieldList[0]: unknown key 'x'" in p for p in problems)


def test_error_required_members_enforced():
    problems = error("ServiceQuotaExceededException", 402, {"message": "m"}, "CreateCollaboration")
    assert any("quotaName" in p for p in problems) and any("quotaValue" in p for p in problems)


def test_error_status_must_match_model():
    assert any("httpStatusCode 400" in p for p in error("ValidationException", 403, {"message": "m"}))


def test_undeclared_error_code_fails():
    body = {"message": "m", "resourceId": "r", "resourceType": "COLLABORATION"}
    assert any("neither declared" in p for p in error("ResourceNotFoundException", 404, body))
    assert any("neither declared" in p for p in error("TotallyMadeUpException", 400, {"message": "m"}))


def test_error_needs_type_header_and_message():
    missing_header = conformance.check_error(op("ListCollaborations"), 500, REQ_ID, b'{"message": "m"}')
    assert any("x-amzn-ErrorType" in p for p in missing_header)
    assert any("'message'" in p for p in error("InternalServerException", 500, {"msg": "m"}))
    assert any("'message'" in p for p in error("InternalServerException", 500, {"message": 3}))


def test_allow_list_is_a_constant_tests_can_tighten(monkeypatch):
    assert "UnrecognizedClientException" in conformance.COMMON_ERROR_CODES
    monkeypatch.setattr(conformance, "COMMON_ERROR_CODES", frozenset())
    assert any("neither declared" in p for p in error("UnrecognizedClientException", 403, {"message": "m"}))


# ---- install(): real boto3 clients with canned HTTP responses -------------------------------------------------

class _Raw:
    def __init__(self, body: bytes):
        self._body = body

    def stream(self, **_):
        yield self._body


def make_client(responses, sent):
    """boto3 client whose HTTP layer replays (status, headers, body) tuples, recording each send."""
    client = boto3.client(
        "cleanrooms", endpoint_url="http://127.0.0.1:9", region_name="us-east-1",
        aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret",
        config=botocore.config.Config(retries={"mode": "standard", "max_attempts": 3}))
    queue = list(responses)

    def send(request, **_):
        sent.append(request.url)
        status, headers, body = queue.pop(0)
        return botocore.awsrequest.AWSResponse(request.url, status, headers, _Raw(body))

    client.meta.events.register("before-send.cleanrooms", send)
    return client


OK = (200, REQ_ID, json.dumps(VALID_LIST).encode())
BAD = (200, REQ_ID, json.dumps(with_summary(memberStatus="WRONG")).encode())


@pytest.fixture(autouse=True)
def no_retry_sleep(monkeypatch):
    monkeypatch.setattr(botocore.endpoint.time, "sleep", lambda _seconds: None)


def test_install_makes_nonconforming_call_raise():
    sent = []
    client = conformance.install(make_client([BAD, OK], sent))
    with pytest.raises(AssertionError, match="memberStatus"):
        client.list_collaborations()
    assert client.list_collaborations()["collaborationList"][0]["memberStatus"] == "ACTIVE"
    assert len(sent) == 2


def test_without_install_boto3_accepts_the_bad_body():
    """Control: proves the failure above comes from the hook, not from botocore."""
    assert make_client([BAD], []).list_collaborations()["collaborationList"][0]["memberStatus"] == "WRONG"


def test_conforming_modeled_error_surfaces_as_client_error_not_assertion():
    client = conformance.install(make_client(
        [(403, {**REQ_ID, "x-amzn-ErrorType": "AccessDeniedException"}, b'{"message": "no"}')], []))
    with pytest.raises(client.exceptions.AccessDeniedException):
        client.get_collaboration(collaborationIdentifier=UUID)


def test_nonconforming_error_raises_assertion():
    client = conformance.install(make_client(
        [(403, {**REQ_ID, "x-amzn-ErrorType": "ValidationException"}, b'{"message": "no"}')], []))
    with pytest.raises(AssertionError, match="httpStatusCode 400"):
        client.get_collaboration(collaborationIdentifier=UUID)


def test_204_operation_through_boto3():
    good = conformance.install(make_client([(204, REQ_ID, b"")], []))
    good.delete_collaboration(collaborationIdentifier=UUID)
    bad = conformance.install(make_client([(204, REQ_ID, b"{}")], []))
    with pytest.raises(AssertionError, match="204"):
        bad.delete_collaboration(collaborationIdentifier=UUID)


def test_retried_intermediate_response_is_checked():
    """A bad 500 that botocore would retry away must still fail the test (after-call would miss it)."""
    bad_500 = (500, REQ_ID, b"upstream exploded")
    unchecked = []
    assert make_client([bad_500, OK], unchecked).list_collaborations()["collaborationList"]
    assert len(unchecked) == 2  # control: botocore retried and succeeded
    sent = []
    with pytest.raises(AssertionError, match="x-amzn-ErrorType"):
        conformance.install(make_client([bad_500, OK], sent)).list_collaborations()
    assert len(sent) == 1


def test_conforming_retryable_error_still_retries():
    throttled = (429, {**REQ_ID, "x-amzn-ErrorType": "ThrottlingException"}, b'{"message": "slow down"}')
    sent = []
    client = conformance.install(make_client([throttled, OK], sent))
    assert client.list_collaborations()["ResponseMetadata"]["RetryAttempts"] == 1
    assert len(sent) == 2


def test_install_is_idempotent_and_per_client(monkeypatch):
    calls = []
    real = conformance.check_response
    monkeypatch.setattr(conformance, "check_response", lambda *a: calls.append(a[0].name) or real(*a))
    first = make_client([OK], [])
    assert conformance.install(conformance.install(first)) is first
    first.list_collaborations()
    assert calls == ["ListCollaborations"]
    second = conformance.install(make_client([BAD], []))  # a fresh client is not blocked by the first's hook
    with pytest.raises(AssertionError):
        second.list_collaborations()


def test_check_functions_do_not_mutate_input():
    body = copy.deepcopy(VALID_LIST)
    list_problems(body)
    assert body == VALID_LIST


def test_unsatisfiable_model_limits_are_exempt_and_nothing_else():
    from tests.support.conformance import UNSATISFIABLE_LIMITS, check_output

    arn_shape = SM.shape_for("ConfiguredTableAssociationArn")
    long_arn = ("arn:aws:cleanrooms:us-east-1:123456789012:configuredtableassociation/"
                "00000000-0000-4000-8000-000000000000/00000000-0000-4000-8000-000000000001")
    assert ("ConfiguredTableAssociationArn", "max") in UNSATISFIABLE_LIMITS
    assert check_output(arn_shape, long_arn) == []
    assert check_output(SM.shape_for("CollaborationArn"), long_arn.replace("configuredtableassociation",
                                                                              "collaboration")) != []
