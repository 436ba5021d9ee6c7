"""RequestParser: URI labels, query string and JSON body merged into one input dict keyed by member names."""

from __future__ import annotations

import json
from urllib.parse import unquote

import pytest

from opencleanrooms.errors import ServiceError
from opencleanrooms.protocol.model import load_service_model
from opencleanrooms.protocol.parser import RequestParser, parse_json_object
from opencleanrooms.protocol.router import Router

MODEL = load_service_model()
ROUTER = Router(MODEL)
ID = "0b7e7d3c-1111-4a4a-9c9c-123456789abc"
ARN = f"arn:aws:cleanrooms:us-east-1:123456789012:collaboration/{ID}"
ENCODED_ARN = "arn%3Aaws%3Acleanrooms%3Aus-east-1%3A123456789012%3Acollaboration%2F" + ID


def parse(method: str, path: str, query: str = "", body: bytes | str = b"", headers: dict | None = None) -> dict:
    """Route then parse, as the pipeline does."""
    route = ROUTER.match(method, path)
    assert route is not None, (method, path)
    if isinstance(body, str):
        body = body.encode()
    return RequestParser().parse(route.operation, route.labels, query, headers or {}, body)


def serialization_error(body: bytes) -> ServiceError:
    with pytest.raises(ServiceError) as info:
        parse_json_object(body)
    assert (info.value.code, info.value.status) == ("SerializationException", 400)
    assert info.value.message
    return info.value


# ---------------------------------------------------------------------------------------------------- labels


def test_uri_labels_become_members():
    assert parse("GET", f"/collaborations/{ID}") == {"collaborationIdentifier": ID}
    assert parse("DELETE", f"/collaborations/{ID}/member/123456789012") == {
        "collaborationIdentifier": ID, "accountId": "123456789012"}


def test_uri_labels_are_percent_decoded():
    assert parse("GET", f"/tags/{ENCODED_ARN}") == {"resourceArn": ARN}
    assert parse("GET", "/tags/" + ENCODED_ARN.replace("%3A", ":")) == {"resourceArn": ARN}
    assert parse("GET", "/collaborations/a%20b%2Bc+d") == {"collaborationIdentifier": "a b+c+d"}


def test_string_labels_are_not_converted():
    assert parse("GET", "/collaborations/123") == {"collaborationIdentifier": "123"}
    assert parse("GET", "/collaborations/true") == {"collaborationIdentifier": "true"}


def test_direct_parse_with_labels_the_operation_does_not_have():
    op = MODEL.operation_model("GetCollaboration")
    params = RequestParser().parse(op, {"collaborationIdentifier": ID, "bogus": "x"}, "", {}, b"")
    assert params == {"collaborationIdentifier": ID}


# ----------------------------------------------------------------------------------------------------- query


def test_query_integers_are_converted():
    assert parse("GET", "/collaborations", "maxResults=5") == {"maxResults": 5}
    assert parse("GET", "/collaborations", "maxResults=007") == {"maxResults": 7}
    assert parse("GET", "/collaborations", "maxResults=-3") == {"maxResults": -3}


@pytest.mark.parametrize("raw", ["abc", "1.5", "", "1e3", "0x10", "%20", "5_0", "1_000", "%205", "5%20", "5%0A"])
def test_bad_query_integers_are_kept_raw_for_the_validator(raw):
    """Only an optionally signed run of digits is an integer: Python's int() also takes '5_0' and ' 5 '."""
    assert parse("GET", "/collaborations", f"maxResults={raw}") == {"maxResults": unquote(raw)}


def test_query_values_are_percent_decoded_and_plus_is_a_plus():
    assert parse("GET", "/collaborations", "memberStatus=%41CTIVE&nextToken=a+b%2Bc%20d") == {
        "memberStatus": "ACTIVE", "nextToken": "a+b+c d"}


def test_query_lists_collect_repeated_keys_in_order():
    assert parse("DELETE", f"/tags/{ENCODED_ARN}", "tagKeys=b&tagKeys=a&tagKeys=b") == {
        "resourceArn": ARN, "tagKeys": ["b", "a", "b"]}
    assert parse("DELETE", f"/tags/{ENCODED_ARN}", "tagKeys=one") == {"resourceArn": ARN, "tagKeys": ["one"]}
    assert parse("DELETE", f"/tags/{ENCODED_ARN}", "tagKeys=a%26b&tagKeys=") == {
        "resourceArn": ARN, "tagKeys": ["a&b", ""]}


def test_repeated_scalar_query_keys_keep_the_first():
    assert parse("GET", "/collaborations", "maxResults=5&maxResults=7") == {"maxResults": 5}


def test_unknown_query_keys_are_ignored():
    assert parse("GET", "/collaborations", "foo=bar&maxresults=3&MaxResults=4&&=x&novalue") == {}
    assert parse("GET", "/collaborations", "foo=1&maxResults=2") == {"maxResults": 2}


def test_query_ignored_for_operations_without_query_members():
    assert parse("GET", f"/collaborations/{ID}", "collaborationIdentifier=other") == {
        "collaborationIdentifier": ID}


def test_query_key_without_value_is_empty():
    assert parse("GET", "/collaborations", "memberStatus") == {"memberStatus": ""}


# ------------------------------------------------------------------------------------------------------ body


def test_body_members_only():
    body = json.dumps({"name": "n", "members": [], "bogus": 1, "collaboration": {}, "Name": "shadow"})
    assert parse("POST", "/collaborations", body=body) == {"name": "n", "members": []}


def test_body_cannot_set_uri_or_query_members():
    body = json.dumps({"collaborationIdentifier": "from-body", "name": "n"})
    assert parse("PATCH", f"/collaborations/{ID}", body=body) == {"collaborationIdentifier": ID, "name": "n"}
    body = json.dumps({"resourceArn": "x", "tagKeys": ["y"]})
    assert parse("DELETE", f"/tags/{ENCODED_ARN}", "tagKeys=k", body=body) == {
        "resourceArn": ARN, "tagKeys": ["k"]}


def test_body_values_are_passed_through_unconverted():
    body = json.dumps({"name": 5, "members": {}, "isMetricsEnabled": "true"})
    assert parse("POST", "/collaborations", body=body) == {"name": 5, "members": {}, "isMetricsEnabled": "true"}


def test_nulls_and_unknown_members_are_dropped_at_every_depth():
    body = json.dumps({
        "name": None, "tags": None, "bogus": 1,
        "dataEncryptionMetadata": {"allowCleartext": True, "preserveNulls": None, "extra": {"x": 1}},
        "members": [{"accountId": "111111111111", "displayName": None, "smuggled": "x",
                     "paymentConfiguration": {"queryCompute": {"isResponsible": True, "bonus": 1}}}, None],
        "creatorMLMemberAbilities": {"customMLMemberAbilities": [None, "CAN_RECEIVE_MODEL_OUTPUT"]},
    })
    assert parse("POST", "/collaborations", body=body) == {
        "dataEncryptionMetadata": {"allowCleartext": True},
        "members": [{"accountId": "111111111111",
                     "paymentConfiguration": {"queryCompute": {"isResponsible": True}}}, None],
        "creatorMLMemberAbilities": {"customMLMemberAbilities": [None, "CAN_RECEIVE_MODEL_OUTPUT"]},
    }
    body = json.dumps({"tags": {"a": None, "b": "x"}})
    assert parse("POST", f"/tags/{ENCODED_ARN}", body=body) == {"resourceArn": ARN, "tags": {"a": None, "b": "x"}}


def test_body_is_not_parsed_for_operations_without_body_members():
    assert parse("GET", "/collaborations", "maxResults=1", body=b"\xff not json [") == {"maxResults": 1}
    assert parse("DELETE", f"/collaborations/{ID}", body=b"[1, 2]") == {"collaborationIdentifier": ID}


@pytest.mark.parametrize("body", [b"", b"   ", b"\r\n\t ", b"{}", b" {} "])
def test_empty_bodies_are_an_empty_object(body):
    assert parse_json_object(body) == {}
    assert parse("POST", "/collaborations", body=body) == {}


def test_nested_json_within_the_limit_is_accepted():
    nested = "[" * 60 + "]" * 60
    assert parse_json_object(f'{{"a": {nested}}}'.encode())["a"] == json.loads(nested)


@pytest.mark.parametrize("text", ["[" * 100, "{" * 65, "[{" * 40, "x]" * 10 + "[" * 80],
                         ids=["100-brackets", "65-braces", "mixed-80", "after-closers"])
def test_brackets_inside_strings_are_not_nesting(text):
    """A string value is not structure: e.g. a (valid) collaboration name of 100 '[' characters."""
    body = json.dumps({"name": text}).encode()
    assert parse_json_object(body) == {"name": text}


def test_unicode_body_is_decoded():
    text = "Zo\u00eb \u2603 \U0001f600"
    assert parse_json_object(json.dumps({"name": text}, ensure_ascii=False).encode()) == {"name": text}
    assert parse_json_object(b'{"name": "\\u00eb\\ud83d\\ude00"}') == {"name": "\u00eb\U0001f600"}


@pytest.mark.parametrize("body", [
    b'{"name": "x"',
    b"{'name': 'x'}",
    b'{"name": "x"} trailing',
    b"[]",
    b'[{"name": "x"}]',
    b'"text"',
    b"null",
    b"42",
    b"true",
    b'{"name": "\xff"}',
    b"\xef\xbb\xbf{}",  # UTF-8 BOM is not JSON
    b'{"a":' + b"[" * 10_000 + b"]" * 10_000 + b"}",
    b"[" * 10_000,
    b'{"a":' * 10_000 + b"1" + b"}" * 10_000,
    b'{"a":' + b"[" * 65 + b"]" * 65 + b"}",
], ids=["truncated", "single-quotes", "trailing", "array", "array-of-object", "string", "null", "number", "true",
        "invalid-utf8", "bom", "nested-10000", "unclosed-10000", "objects-10000", "just-over-the-limit"])
def test_serialization_exceptions(body):
    serialization_error(body)
    op = MODEL.operation_model("CreateCollaboration")
    with pytest.raises(ServiceError) as info:
        RequestParser().parse(op, {}, "", {}, body)
    assert info.value.code == "SerializationException"


def test_serialization_messages_say_what_is_wrong():
    assert "UTF-8" in serialization_error(b'{"a": "\xff"}').message
    assert "nested" in serialization_error(b"[" * 100 + b"]" * 100).message
    assert "object" in serialization_error(b"[]").message
    assert "JSON" in serialization_error(b"{").message


def test_bindings_are_cached_per_operation():
    parser = RequestParser()
    op = MODEL.operation_model("ListCollaborations")
    assert parser.parse(op, {}, "maxResults=1", {}, b"") == {"maxResults": 1}
    assert parser.parse(op, {}, "maxResults=2", {}, b"") == {"maxResults": 2}
    other = MODEL.operation_model("ListMemberships")
    assert parser.parse(other, {}, "status=ACTIVE&maxResults=3", {}, b"") == {"status": "ACTIVE", "maxResults": 3}
