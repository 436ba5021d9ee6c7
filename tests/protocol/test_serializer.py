"""ResponseSerializer: outputs with the modeled status, errors in the rest-json error format."""

from __future__ import annotations

import json

import pytest

from opencleanrooms.errors import ServiceError
from opencleanrooms.protocol.model import load_service_model
from opencleanrooms.protocol.serializer import HttpResponse, ResponseSerializer, dump_json
from tests.support import conformance

MODEL = load_service_model()
SERIALIZER = ResponseSerializer(MODEL)
RID = "11111111-2222-4333-8444-555555555555"


def headers_of(response: HttpResponse) -> dict[str, str]:
    names = [k.lower() for k, _ in response.headers]
    assert len(names) == len(set(names)), f"duplicate headers: {response.headers}"
    return {k.lower(): v for k, v in response.headers}


# ---------------------------------------------------------------------------------------------------- output


@pytest.mark.parametrize("operation", [n for n in MODEL.operation_names
                                       if MODEL.operation_model(n).http.get("responseCode") == 204])
def test_204_operations_have_an_empty_body_and_no_content_type(operation):
    op = MODEL.operation_model(operation)
    for output in (None, {}, {"ignored": True}):
        response = SERIALIZER.output(op, output, RID)
        assert (response.status, response.body) == (204, b"")
        assert headers_of(response) == {"x-amzn-requestid": RID}
        assert conformance.check_response(op, response.status, dict(response.headers), response.body) == []


def test_deletes_in_the_model_are_204():
    deletes = [n for n in MODEL.operation_names if n.startswith("Delete")]
    assert deletes and all(MODEL.operation_model(n).http.get("responseCode") == 204 for n in deletes)


def test_200_output_is_json_with_request_id():
    op = MODEL.operation_model("ListCollaborations")
    response = SERIALIZER.output(op, {"collaborationList": [], "nextToken": "t"}, RID)
    assert response.status == 200
    assert headers_of(response) == {"x-amzn-requestid": RID, "content-type": "application/json"}
    assert json.loads(response.body) == {"collaborationList": [], "nextToken": "t"}
    assert conformance.check_response(op, response.status, dict(response.headers), response.body) == []


@pytest.mark.parametrize("operation", ["TagResource", "UntagResource"])
def test_empty_outputs_are_an_empty_object(operation):
    op = MODEL.operation_model(operation)
    for output in (None, {}):
        response = SERIALIZER.output(op, output, RID)
        assert (response.status, response.body) == (200, b"{}")
        assert conformance.check_response(op, response.status, dict(response.headers), response.body) == []


def test_output_is_compact_utf8():
    op = MODEL.operation_model("ListTagsForResource")
    response = SERIALIZER.output(op, {"tags": {"k": "Zo\u00eb \u2603"}}, RID)
    assert response.body == '{"tags":{"k":"Zo\u00eb \u2603"}}'.encode("utf-8")
    assert dump_json({"a": [1, 2]}) == b'{"a":[1,2]}'


# ----------------------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize("shape", MODEL.error_shapes, ids=lambda s: s.name)
def test_error_status_comes_from_the_model_shape(shape):
    expected = shape.metadata["error"]["httpStatusCode"]
    for given in (None, 418):  # a status passed by the raiser never overrides the model
        response = SERIALIZER.error(ServiceError(shape.error_code, "boom", status=given), RID)
        assert response.status == expected
        assert headers_of(response) == {"x-amzn-requestid": RID, "x-amzn-errortype": shape.error_code,
                                         "content-type": "application/json"}
        assert json.loads(response.body) == {"message": "boom"}


def test_error_body_keeps_shape_members_and_drops_unknown_fields():
    error = ServiceError("ValidationException", "bad", reason="FIELD_VALIDATION_FAILED",
                         fieldList=[{"name": "name", "message": "too long"}], secret="internal", trace="x")
    response = SERIALIZER.error(error, RID)
    assert (response.status, json.loads(response.body)) == (400, {
        "message": "bad", "reason": "FIELD_VALIDATION_FAILED", "fieldList": [{"name": "name", "message": "too long"}]})
    op = MODEL.operation_model("CreateCollaboration")
    assert conformance.check_response(op, response.status, dict(response.headers), response.body) == []

    response = SERIALIZER.error(ServiceError("ResourceNotFoundException", "gone", resourceId="r",
                                             resourceType="COLLABORATION", reason="not-a-member"), RID)
    assert (response.status, json.loads(response.body)) == (404, {
        "message": "gone", "resourceId": "r", "resourceType": "COLLABORATION"})


def test_none_fields_are_omitted():
    response = SERIALIZER.error(ServiceError("ConflictException", "c", resourceId=None, reason="ALREADY_EXISTS"),
                                RID)
    assert (response.status, json.loads(response.body)) == (409, {"message": "c", "reason": "ALREADY_EXISTS"})


@pytest.mark.parametrize("code,status", [
    ("UnknownOperationException", 404),
    ("NotImplementedException", 501),
    ("RequestEntityTooLargeException", 413),
    ("SerializationException", 400),
    ("MissingAuthenticationTokenException", 403),
    ("IncompleteSignatureException", 400),
])
def test_non_model_codes_use_the_given_status(code, status):
    response = SERIALIZER.error(ServiceError(code, "m", status=status), RID)
    assert response.status == status
    assert headers_of(response)["x-amzn-errortype"] == code
    assert json.loads(response.body) == {"message": "m"}


def test_non_model_codes_default_to_400_and_keep_their_fields():
    response = SERIALIZER.error(ServiceError("SomethingElseException", "m", detail="d"), RID)
    assert (response.status, json.loads(response.body)) == (400, {"message": "m", "detail": "d"})


def test_error_body_is_utf8_json():
    response = SERIALIZER.error(ServiceError("ValidationException", "Value 'Zo\u00eb' at 'name'"), RID)
    assert response.body == "{\"message\":\"Value 'Zo\u00eb' at 'name'\"}".encode("utf-8")


def test_unpaired_surrogates_in_an_error_message_still_give_a_json_error():
    """Validation messages echo client strings; JSON `"\\ud800"` decodes to a lone surrogate, not encodable as
    UTF-8. The serializer must still produce a response (escaped or replaced), never raise."""
    response = SERIALIZER.error(ServiceError("ValidationException", "Value '\ud800' at 'name'",
                                             fieldList=[{"name": "name", "message": "Value '\udfff'"}]), RID)
    assert response.status == 400
    body = json.loads(response.body)
    assert body["message"].startswith("Value '") and body["message"].endswith("' at 'name'")
