"""Tests for the model-driven input validator, run against the real cleanrooms model shapes from botocore.

A few genericity cases (documents, recursive shapes, number types the cleanrooms inputs lack) use a small botocore
ServiceModel built here: that is botocore's own class, not a stand-in for our code.
"""

from __future__ import annotations


import botocore.model
import pytest

from opencleanrooms.protocol.model import load_service_model
from opencleanrooms.protocol.patterns import compile_pattern, runs_on_simulation
from opencleanrooms.protocol.validator import FieldViolation, validate, validation_message

SM = load_service_model()


def shape(operation: str) -> botocore.model.StructureShape:
    return SM.operation_model(operation).input_shape


def messages(operation: str, params: dict, **kwargs) -> list[str]:
    return [v.message for v in validate(shape(operation), params, **kwargs)]


def member(i: int) -> dict:
    return {"accountId": f"1234567890{i:02d}", "memberAbilities": ["CAN_RECEIVE_RESULTS"], "displayName": f"Member {i}"}


def collaboration(**overrides) -> dict:
    params = {
        "name": "Ad measurement",
        "creatorMemberAbilities": ["CAN_QUERY"],
        "creatorDisplayName": "Advertiser",
        "queryLogStatus": "DISABLED",
        "members": [member(i) for i in range(5)],
    }
    params.update(overrides)
    return params


UUID = "0123abcd-0123-4567-89ab-0123456789ab"


# ------------------------------------------------------------------------------------------ valid inputs


def test_full_valid_create_collaboration_has_no_violations():
    params = collaboration(
        description="Line one\nline two",
        creatorMLMemberAbilities={"customMLMemberAbilities": ["CAN_RECEIVE_MODEL_OUTPUT"]},
        dataEncryptionMetadata={
            "allowCleartext": True,
            "allowDuplicates": False,
            "allowJoinsOnColumnsWithDifferentNames": False,
            "preserveNulls": True,
        },
        jobLogStatus="ENABLED",
        tags={"team": "ads", "empty": ""},
        creatorPaymentConfiguration={
            "queryCompute": {"isResponsible": True},
            "machineLearning": {"modelTraining": {"isResponsible": False}},
            "jobCompute": {"isResponsible": True},
        },
        analyticsEngine="SPARK",
        autoApprovedChangeRequestTypes=["ADD_MEMBER"],
        allowedResultRegions=["us-east-1", "eu-west-1"],
        isMetricsEnabled=False,
    )
    params["members"][0]["paymentConfiguration"] = {"queryCompute": {"isResponsible": False}}
    assert validate(shape("CreateCollaboration"), params) == []


def test_valid_inputs_of_other_operations_have_no_violations():
    assert validate(shape("ListCollaborations"), {"maxResults": 100, "memberStatus": "ACTIVE", "nextToken": "x"}) == []
    configured_table = {
        "name": "Customers",
        "tableReference": {"glue": {"tableName": "customer_table-2024", "databaseName": "sales_db"}},
        "allowedColumns": ["email", "hashed id"],
        "analysisMethod": "DIRECT_QUERY",
    }
    assert validate(shape("CreateConfiguredTable"), configured_table) == []
    query = {
        "type": "SQL",
        "membershipIdentifier": UUID,
        "sqlParameters": {"queryString": "SELECT 1", "parameters": {"limit_value": "10"}},
        "resultConfiguration": {
            "outputConfiguration": {"s3": {"resultFormat": "CSV", "bucket": "my-results.bucket", "keyPrefix": "a/b"}}
        },
        "computeConfiguration": {"worker": {"type": "CR.1X", "number": 16}},
    }
    assert validate(shape("StartProtectedQuery"), query) == []


def test_unknown_members_are_ignored():
    assert validate(shape("CreateCollaboration"), collaboration(brandNewMember={"x": [1, 2]}, other=None)) == []


# ------------------------------------------------------------------------------------------ exact messages


@pytest.mark.parametrize(
    "params, expected",
    [
        (
            {"memberStatus": "LEFT"},
            "Value 'LEFT' at 'memberStatus' failed to satisfy constraint: "
            "Member must satisfy enum value set: [INVITED, ACTIVE]",
        ),
        (
            {"maxResults": 0},
            "Value '0' at 'maxResults' failed to satisfy constraint: Member must have value greater than or equal to 1",
        ),
        (
            {"maxResults": 101},
            "Value '101' at 'maxResults' failed to satisfy constraint: Member must have value less than or equal to 100",
        ),
        ({"maxResults": "abc"}, "Value 'abc' at 'maxResults' failed to satisfy constraint: Member must be of type integer"),
        ({"maxResults": True}, "Value 'true' at 'maxResults' failed to satisfy constraint: Member must be of type integer"),
        ({"maxResults": 5.0}, "Value '5.0' at 'maxResults' failed to satisfy constraint: Member must be of type integer"),
        ({"nextToken": 7}, "Value '7' at 'nextToken' failed to satisfy constraint: Member must be of type string"),
    ],
)
def test_list_collaborations_query_parameters(params, expected):
    assert messages("ListCollaborations", params) == [expected]


def test_integer_outside_32_bits_is_a_type_violation_not_a_crash():
    assert messages("ListCollaborations", {"maxResults": 2**40})[0].endswith("Member must be of type integer")


def test_missing_and_null_required_members():
    params = collaboration()
    del params["name"]
    expected = "Value null at 'name' failed to satisfy constraint: Member must not be null"
    assert messages("CreateCollaboration", params) == [expected]
    assert messages("CreateCollaboration", collaboration(name=None)) == [expected]
    violations = validate(shape("CreateCollaboration"), {})
    assert [v.path for v in violations] == ["members", "name", "creatorMemberAbilities", "creatorDisplayName",
                                            "queryLogStatus"]
    assert {(v.constraint, v.value_repr) for v in violations} == {("Member must not be null", "null")}


def test_string_too_long():
    name = "n" * 101
    assert messages("CreateCollaboration", collaboration(name=name)) == [
        f"Value '{name}' at 'name' failed to satisfy constraint: Member must have length less than or equal to 100"
    ]


def test_length_counts_code_points():
    assert validate(shape("CreateCollaboration"), collaboration(name="é" * 100)) == []
    assert len(validate(shape("CreateCollaboration"), collaboration(name="é" * 101))) == 1


def test_account_id_length_is_checked_before_the_pattern():
    params = collaboration(members=[dict(member(0), accountId="abc")])
    assert messages("CreateCollaboration", params) == [
        "Value 'abc' at 'members.1.member.accountId' failed to satisfy constraint: "
        "Member must have length greater than or equal to 12"
    ]


def test_account_id_pattern():
    params = collaboration(members=[member(0), dict(member(1), accountId="abcdefghijkl")])
    assert messages("CreateCollaboration", params) == [
        "Value 'abcdefghijkl' at 'members.2.member.accountId' failed to satisfy constraint: "
        "Member must satisfy regular expression pattern: \\d+"
    ]


def test_pattern_must_match_the_whole_value():
    # Coral matches like Java's Matcher.matches(): a digit run somewhere in the value is not enough.
    params = collaboration(members=[dict(member(0), accountId="12345678901a")])
    assert [v.constraint for v in validate(shape("CreateCollaboration"), params)] == [
        "Member must satisfy regular expression pattern: \\d+"
    ]
    # A pattern ending in `*` would be vacuous under search semantics.
    query = {"type": "SQL", "membershipIdentifier": UUID, "sqlParameters": {"queryString": "q"},
             "resultConfiguration": {"outputConfiguration": {"s3": {"resultFormat": "CSV", "bucket": "bkt",
                                                                    "keyPrefix": "has space"}}}}
    assert [v.path for v in validate(shape("StartProtectedQuery"), query)] == [
        "resultConfiguration.outputConfiguration.s3.keyPrefix"
    ]


def test_blank_display_name_fails_the_negative_lookahead():
    params = collaboration(creatorDisplayName="   ")
    assert [v.path for v in validate(shape("CreateCollaboration"), params)] == ["creatorDisplayName"]


def test_nested_list_paths():
    members = [member(0), dict(member(1), memberAbilities=["CAN_QUERY", "CAN_FLY"])]
    assert messages("CreateCollaboration", collaboration(members=members)) == [
        "Value 'CAN_FLY' at 'members.2.member.memberAbilities.2.member' failed to satisfy constraint: "
        "Member must satisfy enum value set: [CAN_QUERY, CAN_RECEIVE_RESULTS, CAN_RUN_JOB, CAN_EXPORT_QUERY_ANALYSIS_LOG]"
    ]


def test_nested_structure_path_and_boolean_type():
    metadata = {"allowCleartext": "yes", "allowDuplicates": False, "allowJoinsOnColumnsWithDifferentNames": False}
    assert messages("CreateCollaboration", collaboration(dataEncryptionMetadata=metadata)) == [
        "Value 'yes' at 'dataEncryptionMetadata.allowCleartext' failed to satisfy constraint: "
        "Member must be of type boolean",
        "Value null at 'dataEncryptionMetadata.preserveNulls' failed to satisfy constraint: Member must not be null",
    ]


def test_null_list_element():
    assert messages("CreateCollaboration", collaboration(creatorMemberAbilities=["CAN_QUERY", None])) == [
        "Value null at 'creatorMemberAbilities.2.member' failed to satisfy constraint: Member must not be null"
    ]


@pytest.mark.parametrize(
    "member_name, value, kind",
    [("members", {"a": 1}, "list"), ("dataEncryptionMetadata", [True], "structure"), ("tags", ["k"], "map"),
     ("name", ["x"], "string"), ("isMetricsEnabled", 1, "boolean")],
)
def test_wrong_types_get_one_violation_and_are_not_inspected(member_name, value, kind):
    violations = validate(shape("CreateCollaboration"), collaboration(**{member_name: value}))
    assert [(v.path, v.constraint) for v in violations] == [(member_name, f"Member must be of type {kind}")]


def test_list_length_constraint():
    rule = {"list": {"joinColumns": ["a"], "listColumns": ["b"], "allowedJoinOperators": ["OR", "AND", "OR"]}}
    params = {"configuredTableIdentifier": UUID, "analysisRuleType": "LIST", "analysisRulePolicy": {"v1": rule}}
    assert messages("CreateConfiguredTableAnalysisRule", params) == [
        "Value '[OR, AND, OR]' at 'analysisRulePolicy.v1.list.allowedJoinOperators' failed to satisfy constraint: "
        "Member must have length less than or equal to 2"
    ]


def test_double_range():
    source = {"text": "SELECT 1"}
    synthetic = {"mlSyntheticDataParameters": {"epsilon": 0.00001, "maxMembershipInferenceAttackScore": 1,
                                               "columnClassification": {"columnMapping": []}}}
    params = {"membershipIdentifier": UUID, "name": "t", "format": "SQL", "source": source,
              "syntheticDataParameters": synthetic}
    found = [(v.path, v.constraint) for v in validate(shape("CreateAnalysisTemplate"), params)]
    assert found == [
        ("syntheticDataParameters.mlSyntheticDataParameters.epsilon",
         "Member must have value greater than or equal to 0.0001"),
        ("syntheticDataParameters.mlSyntheticDataParameters.columnClassification.columnMapping",
         "Member must have length greater than or equal to 5"),
    ]
    synthetic["mlSyntheticDataParameters"].update(epsilon=float("nan"), columnClassification={"columnMapping": [{}] * 5})
    first = validate(shape("CreateAnalysisTemplate"), params)[0]
    assert (first.path, first.value_repr) == ("syntheticDataParameters.mlSyntheticDataParameters.epsilon", "'nan'")
    assert first.constraint == "Member must have value greater than or equal to 0.0001"


# ------------------------------------------------------------------------------------------ unions


def configured_table(table_reference) -> dict:
    return {"name": "t", "tableReference": table_reference, "allowedColumns": ["c"], "analysisMethod": "DIRECT_QUERY"}


GLUE = {"tableName": "t", "databaseName": "d"}
ATHENA = {"workGroup": "primary", "databaseName": "d", "tableName": "t"}


@pytest.mark.parametrize("reference", [{}, {"glue": None}, {"glue": GLUE, "athena": ATHENA}, {"future": {"x": 1}}])
def test_union_needs_exactly_one_member(reference):
    violations = validate(shape("CreateConfiguredTable"), configured_table(reference))
    assert [(v.path, v.constraint) for v in violations] == [
        ("tableReference", "Member must have exactly one member set")
    ]


def test_union_with_one_member_set_is_valid_and_the_member_is_checked():
    assert validate(shape("CreateConfiguredTable"), configured_table({"athena": ATHENA})) == []
    assert [v.path for v in validate(shape("CreateConfiguredTable"), configured_table({"glue": {"tableName": "t"}}))] == [
        "tableReference.glue.databaseName"
    ]


def test_nested_unions():
    params = {"configuredTableIdentifier": UUID, "analysisRuleType": "CUSTOM", "analysisRulePolicy": {"v1": {}}}
    assert [(v.path, v.value_repr) for v in validate(shape("CreateConfiguredTableAnalysisRule"), params)] == [
        ("analysisRulePolicy.v1", "'{}'")
    ]


# ------------------------------------------------------------------------------------------ maps


def test_map_key_too_long():
    key = "k" * 129
    violations = validate(shape("CreateCollaboration"), collaboration(tags={key: "v"}))
    assert [(v.path, v.constraint) for v in violations] == [
        ("tags", "Map keys must satisfy constraint: "
                 "[Member must have length less than or equal to 128, Member must have length greater than or equal to 1]")
    ]
    assert violations[0].value_repr == "'{" + "k" * 127 + "...'"


def test_map_values_and_one_violation_per_map():
    tags = {"a": "v" * 257, "b": 5, "": "x", "c": None, "k" * 129: "y"}
    assert [v.constraint for v in validate(shape("CreateCollaboration"), collaboration(tags=tags))] == [
        "Map value must satisfy constraint: "
        "[Member must have length less than or equal to 256, Member must have length greater than or equal to 0]",
        "Map keys must satisfy constraint: "
        "[Member must have length less than or equal to 128, Member must have length greater than or equal to 1]",
    ]


def test_map_value_of_wrong_type_names_the_type():
    constraint = validate(shape("CreateCollaboration"), collaboration(tags={"a": 5}))[0].constraint
    assert constraint.endswith(", Member must be of type string]")


def test_map_entry_count():
    tags = {f"k{i}": "v" for i in range(201)}
    assert [v.constraint for v in validate(shape("CreateCollaboration"), collaboration(tags=tags))] == [
        "Member must have length less than or equal to 200"
    ]


def test_map_key_pattern():
    params = {"type": "SQL", "membershipIdentifier": UUID, "sqlParameters": {"parameters": {"bad-name": "1"}}}
    assert [v.constraint for v in validate(shape("StartProtectedQuery"), params)] == [
        "Map keys must satisfy constraint: [Member must have length less than or equal to 100, "
        "Member must have length greater than or equal to 1, Member must satisfy regular expression pattern: "
        "[0-9a-zA-Z_]+]"
    ]


# ------------------------------------------------------------------------------------------ rendering


def test_sensitive_values_are_never_shown():
    secret = "SELECT secret FROM t" + "x" * 500_000
    params = {"type": "SQL", "membershipIdentifier": UUID,
              "sqlParameters": {"queryString": secret, "parameters": {"bad-name": "hunter2"}}}
    violations = validate(shape("StartProtectedQuery"), params)
    assert [v.path for v in violations] == ["sqlParameters.queryString", "sqlParameters.parameters"]
    assert all(v.value_repr == "" for v in violations)
    assert violations[0].message == (
        "Value at 'sqlParameters.queryString' failed to satisfy constraint: "
        "Member must have length less than or equal to 500000"
    )
    assert "hunter2" not in validation_message(violations) and "secret" not in validation_message(violations)


def test_sensitive_string_member_itself():
    params = {"membershipIdentifier": UUID, "name": "t", "format": "SQL", "source": {"text": 7}}
    violations = validate(shape("CreateAnalysisTemplate"), params)
    assert [(v.path, v.value_repr) for v in violations] == [("source.text", "")]


def test_long_values_are_truncated():
    violation = validate(shape("CreateCollaboration"), collaboration(name="x" * 10_000))[0]
    assert violation.value_repr == "'" + "x" * 128 + "...'"
    assert len(violation.message) < 300


def test_lists_and_maps_render_like_java_and_are_bounded():
    abilities = ["CAN_FLY"] * 100_000
    violation = validate(shape("CreateCollaboration"), collaboration(creatorMemberAbilities=abilities), 1)[0]
    assert violation.path == "creatorMemberAbilities.1.member"
    big = {"allowCleartext": 1, "x": list(range(10_000))}
    violation = validate(shape("CreateCollaboration"), collaboration(dataEncryptionMetadata=big), 1)[0]
    assert violation.value_repr == "'1'"
    union = configured_table({"glue": GLUE, "athena": ATHENA})
    rendered = validate(shape("CreateConfiguredTable"), union)[0].value_repr
    assert rendered == "'{glue={tableName=t, databaseName=d}, athena={workGroup=primary, databaseName=d, tableName=t}}'"


def test_validation_message_wording():
    one = FieldViolation("name", "Member must not be null", "null")
    two = FieldViolation("maxResults", "Member must have value greater than or equal to 1", "'0'")
    assert validation_message([one]) == (
        "1 validation error detected: Value null at 'name' failed to satisfy constraint: Member must not be null"
    )
    assert validation_message([one, two]) == (
        "2 validation errors detected: Value null at 'name' failed to satisfy constraint: Member must not be null; "
        "Value '0' at 'maxResults' failed to satisfy constraint: Member must have value greater than or equal to 1"
    )


# ------------------------------------------------------------------------------------------ limits


def test_max_violations_caps_a_hostile_list():
    members = [{"accountId": "x"}] * 10_000  # every element has 3 violations
    violations = validate(shape("CreateCollaboration"), collaboration(members=members))
    assert len(violations) == 50
    assert violations[-1].path.startswith("members.17.member.")
    assert len(validate(shape("CreateCollaboration"), collaboration(members=members), max_violations=3)) == 3
    assert validate(shape("CreateCollaboration"), collaboration(members=members), max_violations=0) == []


def test_catastrophic_backtracking_pattern_is_safe():
    # AthenaTableName's pattern nests `([a-zA-Z0-9_]+)*`; Python's re takes exponential time on this input.
    pattern = SM.shape_for("AthenaTableName").metadata["pattern"]
    assert runs_on_simulation(pattern)  # checked first: were it on re, the next line would not finish
    reference = {"athena": dict(ATHENA, tableName="a" * 127 + "!")}
    violations = validate(shape("CreateConfiguredTable"), configured_table(reference))
    assert [v.path for v in violations] == ["tableReference.athena.tableName"]
    assert validate(shape("CreateConfiguredTable"), configured_table({"athena": dict(ATHENA, tableName="a" * 128)})) == []


def test_loop_closed_by_a_literal_it_can_consume_still_counts_as_risky():
    # In `(a+a)+b` the inner `a+` is followed by `a`, which does not pin where it ends; re needs seconds here.
    assert runs_on_simulation(r"(a+a)+b")
    assert compile_pattern(r"(a+a)+b")("a" * 36) is False


# ------------------------------------------------------------------------------------------ genericity


def synthetic_model() -> botocore.model.ServiceModel:
    shapes = {
        "Input": {"type": "structure", "members": {
            "node": {"shape": "Node"}, "doc": {"shape": "Doc"}, "when": {"shape": "When"}, "ratio": {"shape": "Ratio"},
            "big": {"shape": "Big"}, "data": {"shape": "Data"}, "byName": {"shape": "ByName"},
            "hidden": {"shape": "Hidden"}}},
        "Node": {"type": "structure", "members": {"child": {"shape": "Node"}, "label": {"shape": "Label"}}},
        "Label": {"type": "string", "max": 3},
        "Doc": {"type": "structure", "members": {}, "document": True},
        "When": {"type": "timestamp"},
        "Ratio": {"type": "float", "min": 0, "max": 1},
        "Big": {"type": "long"},
        "Data": {"type": "blob"},
        "ByName": {"type": "map", "key": {"shape": "Label"}, "value": {"shape": "Node"}},
        "Hidden": {"type": "structure", "members": {"label": {"shape": "Label"}}, "sensitive": True},
    }
    description = {"metadata": {"protocol": "rest-json", "apiVersion": "2020-01-01", "endpointPrefix": "x",
                                "signatureVersion": "v4", "serviceId": "X"},
                   "operations": {"Op": {"name": "Op", "http": {"method": "POST", "requestUri": "/"},
                                         "input": {"shape": "Input"}}},
                   "shapes": shapes}
    return botocore.model.ServiceModel(description, service_name="synthetic")


SYNTHETIC = synthetic_model().operation_model("Op").input_shape


def test_documents_accept_any_json_and_are_not_walked():
    deep: dict = {}
    cursor = deep
    for _ in range(5000):
        cursor["x"] = cursor = {}
    assert validate(SYNTHETIC, {"doc": deep}) == []
    assert validate(SYNTHETIC, {"doc": [1, "a", None, 2.5]}) == []


def test_recursive_shapes_are_bounded():
    deep: dict = {}
    cursor = deep
    for _ in range(500):
        cursor["child"] = cursor = {}
    violations = validate(SYNTHETIC, {"node": deep})
    assert len(violations) == 1 and violations[0].constraint == "Member must not be nested deeper than 64"
    assert violations[0].path == "node" + ".child" * 63
    assert [v.path for v in validate(SYNTHETIC, {"node": {"child": {"label": "long"}}})] == ["node.child.label"]


def test_other_scalar_types():
    assert validate(SYNTHETIC, {"when": 1700000000, "ratio": 1, "big": 2**62, "data": "aGk="}) == []
    found = [(v.path, v.constraint) for v in validate(SYNTHETIC, {"when": True, "ratio": 1.5, "big": 2**64, "data": 1})]
    assert [v.constraint for v in validate(SYNTHETIC, {"ratio": "0.5"}) + validate(SYNTHETIC, {"ratio": False})] == [
        "Member must be of type float", "Member must be of type float"]
    assert found == [
        ("when", "Member must be of type timestamp"),
        ("ratio", "Member must have value less than or equal to 1"),
        ("big", "Member must be of type long"),
        ("data", "Member must be of type blob"),
    ]


def test_structured_map_values_use_key_paths_and_sensitivity_is_inherited():
    found = [(v.path, v.value_repr) for v in validate(SYNTHETIC, {"byName": {"n1": {"label": "long"}, "n2": None},
                                                                  "hidden": {"label": "toolong"}})]
    assert found == [("byName.n1.label", "'long'"), ("byName.n2", "null"), ("hidden.label", "")]
