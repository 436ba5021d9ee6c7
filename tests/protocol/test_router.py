"""Router: (method, raw path) -> operation and percent-decoded labels, for every requestUri of the model."""

from __future__ import annotations

import re
from urllib.parse import quote

import botocore.model
import pytest

from opencleanrooms.protocol.model import load_service_model
from opencleanrooms.protocol.router import Router

MODEL = load_service_model()
ROUTER = Router(MODEL)
ARN = "arn:aws:cleanrooms:us-east-1:123456789012:membership/0b7e7d3c-1111-4a4a-9c9c-123456789abc/analysistemplate/x"
ODD = "name with spaces/and:colons%and+plus~"


def label_value(label: str, index: int) -> str:
    """A decoded label value: an ARN for ARN labels, otherwise a distinct UUID-like value."""
    if label.lower().endswith("arn"):
        return ARN
    return f"0b7e7d3c-1111-4a4a-9c9c-{index:012d}"


def fill(uri: str, values: dict[str, str]) -> str:
    return re.sub(r"\{([^}]+)\}", lambda m: quote(values[m.group(1)], safe=""), uri)


@pytest.mark.parametrize("operation", MODEL.operation_names)
def test_every_request_uri_routes_back_to_its_operation(operation):
    op = MODEL.operation_model(operation)
    uri = op.http["requestUri"]
    labels = re.findall(r"\{([^}]+)\}", uri)
    values = {name: label_value(name, i) for i, name in enumerate(labels)}
    route = ROUTER.match(op.http["method"], fill(uri, values))
    assert route is not None, uri
    assert route.operation.name == operation
    assert route.labels == values


@pytest.mark.parametrize("operation", [n for n in MODEL.operation_names
                                       if "{" in MODEL.operation_model(n).http["requestUri"]])
def test_labels_are_percent_decoded_after_matching(operation):
    op = MODEL.operation_model(operation)
    uri = op.http["requestUri"]
    labels = re.findall(r"\{([^}]+)\}", uri)
    values = {name: ODD for name in labels}
    route = ROUTER.match(op.http["method"], fill(uri, values))
    assert route is not None and route.operation.name == operation, uri
    assert route.labels == values


def test_encoded_arn_stays_one_segment_and_colons_may_be_raw():
    arn = "arn:aws:cleanrooms:us-east-1:123456789012:collaboration/0b7e7d3c-1111-4a4a-9c9c-123456789abc"
    for path in ("/tags/" + quote(arn, safe=""), "/tags/" + quote(arn, safe=":"),
                 "/tags/" + quote(arn, safe="").lower()):
        for method, name in (("GET", "ListTagsForResource"), ("POST", "TagResource"), ("DELETE", "UntagResource")):
            route = ROUTER.match(method, path)
            assert route is not None and route.operation.name == name, (method, path)
            assert route.labels == {"resourceArn": arn}
    assert ROUTER.match("GET", "/tags/" + arn) is None  # an unencoded '/' splits the label


def test_literal_segments_beat_labels_whatever_the_declaration_order():
    for order in ((("ByLabel", "/things/{id}"), ("ByLiteral", "/things/special")),
                  (("ByLiteral", "/things/special"), ("ByLabel", "/things/{id}"))):
        router = Router(tiny_model(order))
        assert router.match("GET", "/things/special").operation.name == "ByLiteral"
        route = router.match("GET", "/things/other")
        assert (route.operation.name, route.labels) == ("ByLabel", {"id": "other"})


def test_model_literals_beat_labels():
    route = ROUTER.match("GET", "/collaborations/0b7e7d3c-1111-4a4a-9c9c-123456789abc/members")
    assert route.operation.name == "ListMembers"
    assert ROUTER.match("GET", "/memberships").operation.name == "ListMemberships"
    assert ROUTER.match("GET", "/configuredTables").operation.name == "ListConfiguredTables"


def test_trailing_and_leading_slashes_are_not_segments():
    assert ROUTER.match("GET", "/collaborations/").operation.name == "ListCollaborations"
    route = ROUTER.match("GET", "/collaborations/abc/")
    assert (route.operation.name, route.labels) == ("GetCollaboration", {"collaborationIdentifier": "abc"})
    assert ROUTER.match("GET", "/collaborations").operation.name == "ListCollaborations"


@pytest.mark.parametrize("method,path", [
    ("GET", "/collaborations//members"),
    ("DELETE", "/collaborations/abc/member/"),  # strips to 3 segments: no DELETE template of that shape
    ("DELETE", "/collaborations//member/123456789012"),
    ("GET", "/memberships//analysistemplates/x"),
    ("GET", "/tags/"),
])
def test_empty_label_segments_do_not_match(method, path):
    assert ROUTER.match(method, path) is None


@pytest.mark.parametrize("method,path", [
    ("PUT", "/collaborations"),
    ("DELETE", "/collaborations"),
    ("POST", "/collaborations/abc"),
    ("PATCH", "/tags/abc"),
    ("get", "/collaborations"),
    ("HEAD", "/collaborations"),
])
def test_wrong_method_does_not_match(method, path):
    assert ROUTER.match(method, path) is None


@pytest.mark.parametrize("path", ["/", "", "/nope", "/collaborations/a/b/c/d/e/f", "/Collaborations",
                                  "/collaborations%2Fabc", "/tags"])
def test_unknown_paths_do_not_match(path):
    for method in ("GET", "POST", "PATCH", "DELETE"):
        assert ROUTER.match(method, path) is None


def test_literal_segments_are_compared_undecoded():
    assert ROUTER.match("GET", "/collaboration%73") is None  # %73 is 's': literals must match as sent
    assert ROUTER.match("GET", "/collaborations/abc/member%73") is None


def test_unsupported_uri_templates_are_refused():
    with pytest.raises(ValueError):
        Router(tiny_model([("Greedy", "/things/{key+}")]))
    with pytest.raises(ValueError):
        Router(tiny_model([("Query", "/things?x=1")]))


def tiny_model(operations) -> botocore.model.ServiceModel:
    ops, shapes = {}, {"Id": {"type": "string"}}
    for name, uri in operations:
        labels = re.findall(r"\{([^}+]+)\+?\}", uri)
        shapes[f"{name}Input"] = {
            "type": "structure", "required": labels,
            "members": {label: {"shape": "Id", "location": "uri", "locationName": label} for label in labels},
        }
        ops[name] = {"name": name, "http": {"method": "GET", "requestUri": uri},
                     "input": {"shape": f"{name}Input"}}
    return botocore.model.ServiceModel({
        "metadata": {"protocol": "rest-json", "apiVersion": "2020-01-01", "endpointPrefix": "tiny",
                     "serviceId": "Tiny", "signatureVersion": "v4", "uid": "tiny-2020-01-01"},
        "operations": ops, "shapes": shapes,
    }, service_name="tiny")
