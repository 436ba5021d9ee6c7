"""ID namespace associations and ID mapping tables over HTTP, with several accounts: lifecycle, access from every
role (creator, member, invited member, outsider), validation, pagination, the ID_MAPPING_TABLE schemas and
their managed analysis rule, and PopulateIdMappingTable's rule-based matching over catalog tables.

The local Entity Resolution entries (catalog/entity_resolution.py) are written into the server's database the
way `opencleanrooms catalog import` writes them. Every response is checked against the model by the clients.
"""

from __future__ import annotations

import time

import duckdb
import pytest

from opencleanrooms.catalog import commands as catalog_commands
from opencleanrooms.catalog import entity_resolution
from opencleanrooms.storage import id_mappings as id_mapping_store
from opencleanrooms.storage import tags as tag_store
from tests.e2e.test_table_associations import (
    UNKNOWN_ID,
    account,  # noqa: F401 (fixture)
    associate,
    collaborate,
    create_table,
    field_names,
    table_rule,
)
from tests.e2e.test_protected_queries import wait
from tests.support.builders import all_pages, raises

REGION = "us-east-1"


def namespace_arn(p, name: str, region: str = REGION) -> str:
    return f"arn:aws:entityresolution:{region}:{p.id}:idnamespace/{name}"


def workflow_arn(p, name: str) -> str:
    return f"arn:aws:entityresolution:{REGION}:{p.id}:idmappingworkflow/{name}"


def define_namespace(server, arn: str, kind: str, **entry) -> None:
    with server.db.write() as conn:
        entity_resolution.put_namespace(conn, entity_resolution.make_namespace({"arn": arn, "type": kind, **entry}))


def define_workflow(server, arn: str, source: str, target: str) -> None:
    with server.db.write() as conn:
        entity_resolution.put_workflow(conn, entity_resolution.make_workflow(
            {"arn": arn, "source": source, "target": target}))


def associate_namespace(p, membership_id, arn, name="ns", **extra) -> dict:
    extra.setdefault("inputReferenceConfig", {"inputReferenceArn": arn, "manageResourcePolicies": True})
    return p.client.create_id_namespace_association(membershipIdentifier=membership_id, name=name,
                                                    **extra)["idNamespaceAssociation"]


def create_mapping_table(p, membership_id, arn, name="idmap", **extra) -> dict:
    return p.client.create_id_mapping_table(
        membershipIdentifier=membership_id, name=name,
        inputReferenceConfig={"inputReferenceArn": arn, "manageResourcePolicies": True}, **extra)["idMappingTable"]


@pytest.fixture
def world(server, account):
    """Alice (creator, can query), Bob (receives results), Carol (invited, never joined), Dave (outsider)."""
    alice, bob, carol, dave = account(), account(), account(), account()
    collab = collaborate(alice, bob, invited=(carol,))
    return alice, bob, carol, dave, collab


@pytest.fixture
def mapped(server, world):
    """`world` with Alice's SOURCE namespace and Bob's TARGET namespace associated, and Alice's workflow."""
    alice, bob, carol, dave, collab = world
    source, target = namespace_arn(alice, "customers"), namespace_arn(bob, "visitors")
    define_namespace(server, source, "SOURCE")
    define_namespace(server, target, "TARGET")
    workflow = workflow_arn(alice, "customers-to-visitors")
    define_workflow(server, workflow, source, target)
    a = associate_namespace(alice, collab.mid(alice), source, name="alice customers")
    b = associate_namespace(bob, collab.mid(bob), target, name="bob visitors")
    return world, a, b, workflow


# ------------------------------------------------------------------------------------------------ associations


def test_id_namespace_association_lifecycle(server, world):
    alice, bob, carol, _, collab = world
    mid = collab.mid(alice)
    arn = namespace_arn(alice, "customers")
    define_namespace(server, arn, "SOURCE", database="advertiser", table="customers", id_column="user_id",
                     key_columns=["email_hash"])
    a = associate_namespace(alice, mid, arn, name="Customers", description="our ids\nsecond line",
                            idMappingConfig={"allowUseAsDimensionColumn": False}, tags={"env": "test"})
    assert a["arn"] == f"arn:aws:cleanrooms:{REGION}:{alice.id}:membership/{mid}/idnamespaceassociation/{a['id']}"
    assert (a["membershipId"], a["membershipArn"]) == (mid, collab.memberships[alice.id]["arn"])
    assert (a["collaborationId"], a["collaborationArn"]) == (collab.id, collab.collaboration["arn"])
    assert (a["name"], a["description"]) == ("Customers", "our ids\nsecond line")
    assert a["inputReferenceConfig"] == {"inputReferenceArn": arn, "manageResourcePolicies": True}
    assert a["inputReferenceProperties"] == {"idNamespaceType": "SOURCE",
                                             "idMappingWorkflowsSupported": [{"idMappingType": "RULE_BASED"}]}
    assert a["idMappingConfig"] == {"allowUseAsDimensionColumn": False}
    assert a["createTime"] == a["updateTime"]
    get = lambda: alice.client.get_id_namespace_association(  # noqa: E731
        membershipIdentifier=mid, idNamespaceAssociationIdentifier=a["id"])["idNamespaceAssociation"]
    assert get() == a
    summary = {k: a[k] for k in ("membershipId", "membershipArn", "collaborationArn", "collaborationId",
                                 "createTime", "updateTime", "id", "arn", "inputReferenceConfig", "name",
                                 "description")} | {"inputReferenceProperties": {"idNamespaceType": "SOURCE"}}
    assert all_pages(alice.client, "list_id_namespace_associations", "idNamespaceAssociationSummaries",
                     membershipIdentifier=mid) == [summary]
    with server.db.read() as conn:
        assert tag_store.get(conn, a["arn"]) == {"env": "test"}

    # every member who can read the collaboration sees it, with its creator
    expected = {k: v for k, v in a.items() if k not in ("membershipId", "membershipArn")} | {
        "creatorAccountId": alice.id}
    collaboration_summary = {k: v for k, v in summary.items() if k not in ("membershipId", "membershipArn")} | {
        "creatorAccountId": alice.id}
    for p in (alice, bob, carol):
        assert p.client.get_collaboration_id_namespace_association(
            collaborationIdentifier=collab.id,
            idNamespaceAssociationIdentifier=a["id"])["collaborationIdNamespaceAssociation"] == expected
        assert all_pages(p.client, "list_collaboration_id_namespace_associations",
                         "collaborationIdNamespaceAssociationSummaries",
                         collaborationIdentifier=collab.id) == [collaboration_summary]

    time.sleep(0.01)
    updated = alice.client.update_id_namespace_association(
        membershipIdentifier=mid, idNamespaceAssociationIdentifier=a["id"], name="renamed", description="",
        idMappingConfig={"allowUseAsDimensionColumn": True})["idNamespaceAssociation"]
    assert (updated["name"], updated["description"], updated["idMappingConfig"]) == (
        "renamed", "", {"allowUseAsDimensionColumn": True})
    assert updated["createTime"] == a["createTime"] and updated["updateTime"] > a["updateTime"]
    assert get() == updated
    untouched = alice.client.update_id_namespace_association(
        membershipIdentifier=mid, idNamespaceAssociationIdentifier=a["id"])["idNamespaceAssociation"]
    assert {k: v for k, v in untouched.items() if k != "updateTime"} == {
        k: v for k, v in updated.items() if k != "updateTime"}

    response = alice.client.delete_id_namespace_association(membershipIdentifier=mid,
                                                            idNamespaceAssociationIdentifier=a["id"])
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 204
    response = raises("ResourceNotFoundException", get)
    assert (response["resourceId"], response["resourceType"]) == (a["id"], "MEMBERSHIP")
    raises("ResourceNotFoundException", bob.client.get_collaboration_id_namespace_association,
           collaborationIdentifier=collab.id, idNamespaceAssociationIdentifier=a["id"])
    assert all_pages(alice.client, "list_id_namespace_associations", "idNamespaceAssociationSummaries",
                     membershipIdentifier=mid) == []
    with server.db.read() as conn:
        assert tag_store.get(conn, a["arn"]) == {}
    # the namespace can be associated again
    assert associate_namespace(alice, mid, arn)["id"] != a["id"]


def test_id_namespace_associations_are_readable_by_the_right_roles_only(server, world):
    alice, bob, carol, dave, collab = world
    arn = namespace_arn(alice, "ns1")
    define_namespace(server, arn, "SOURCE")
    a = associate_namespace(alice, collab.mid(alice), arn)
    # through a membership: only its owner; anyone else's membership is like an unknown one
    for p, mid in ((bob, collab.mid(alice)), (dave, collab.mid(alice)), (alice, UNKNOWN_ID)):
        response = raises("ResourceNotFoundException", p.client.get_id_namespace_association,
                          membershipIdentifier=mid, idNamespaceAssociationIdentifier=a["id"])
        assert (response["resourceId"], response["resourceType"]) == (mid, "MEMBERSHIP")
        raises("ResourceNotFoundException", p.client.list_id_namespace_associations, membershipIdentifier=mid)
        raises("ResourceNotFoundException", p.client.update_id_namespace_association, membershipIdentifier=mid,
               idNamespaceAssociationIdentifier=a["id"], name="x")
        raises("ResourceNotFoundException", p.client.delete_id_namespace_association, membershipIdentifier=mid,
               idNamespaceAssociationIdentifier=a["id"])
    # Bob's own membership does not hold Alice's association
    raises("ResourceNotFoundException", bob.client.get_id_namespace_association,
           membershipIdentifier=collab.mid(bob), idNamespaceAssociationIdentifier=a["id"])
    assert bob.client.list_id_namespace_associations(
        membershipIdentifier=collab.mid(bob))["idNamespaceAssociationSummaries"] == []
    # through the collaboration: an outsider, like a caller naming an unknown collaboration, is denied
    for cid in (collab.id, UNKNOWN_ID):
        raises("AccessDeniedException", dave.client.get_collaboration_id_namespace_association,
               collaborationIdentifier=cid, idNamespaceAssociationIdentifier=a["id"])
        raises("AccessDeniedException", dave.client.list_collaboration_id_namespace_associations,
               collaborationIdentifier=cid)
    # a removed member keeps its membership: it reads and deletes its own associations, but creates none
    erin_arn = namespace_arn(carol, "carols")
    define_namespace(server, erin_arn, "SOURCE")
    carol_mid = carol.client.create_membership(collaborationIdentifier=collab.id,
                                               queryLogStatus="DISABLED")["membership"]["id"]
    c = associate_namespace(carol, carol_mid, erin_arn)
    alice.client.delete_member(collaborationIdentifier=collab.id, accountId=carol.id)
    response = raises("ConflictException", associate_namespace, carol, carol_mid, erin_arn, name="other")
    assert response["reason"] == "INVALID_STATE"
    raises("AccessDeniedException", carol.client.get_collaboration_id_namespace_association,
           collaborationIdentifier=collab.id, idNamespaceAssociationIdentifier=c["id"])
    assert carol.client.get_id_namespace_association(
        membershipIdentifier=carol_mid, idNamespaceAssociationIdentifier=c["id"])["idNamespaceAssociation"] == c
    carol.client.delete_id_namespace_association(membershipIdentifier=carol_mid,
                                                 idNamespaceAssociationIdentifier=c["id"])
    # a member who left no longer reads the collaboration's, nor has a membership to create one in
    other_arn = namespace_arn(bob, "ns2")
    define_namespace(server, other_arn, "TARGET")
    bob.client.delete_membership(membershipIdentifier=collab.mid(bob))
    raises("AccessDeniedException", bob.client.list_collaboration_id_namespace_associations,
           collaborationIdentifier=collab.id)
    raises("ResourceNotFoundException", associate_namespace, bob, collab.mid(bob), other_arn)


def test_id_namespace_association_inputs_are_checked(server, world):
    alice, bob, _, _, collab = world
    mid = collab.mid(alice)
    mine, bobs = namespace_arn(alice, "mine"), namespace_arn(bob, "bobs")
    define_namespace(server, mine, "TARGET")
    define_namespace(server, bobs, "SOURCE")
    # someone else's namespace, or one in another region
    for arn in (bobs, namespace_arn(alice, "mine", region="eu-west-1")):
        response = raises("ValidationException", associate_namespace, alice, mid, arn)
        assert field_names(response) == ["inputReferenceConfig.inputReferenceArn"]
    # a namespace the local catalog does not define: the message says how to define it
    response = raises("ValidationException", associate_namespace, alice, mid, namespace_arn(alice, "nowhere"))
    assert "[[id_namespaces]]" in response["Error"]["Message"]
    # malformed input (the model's patterns and lengths)
    for extra, field in (({"name": "   "}, "name"), ({"description": "x" * 256}, "description"),
                         ({"inputReferenceConfig": {"inputReferenceArn": "arn:aws:s3:::bucket",
                                                    "manageResourcePolicies": True}},
                          "inputReferenceConfig.inputReferenceArn")):
        response = raises("ValidationException", associate_namespace, alice, mid, mine, **extra)
        assert field_names(response) == [field], extra
    raises("ValidationException", associate_namespace, alice, mid, mine, tags={"aws:x": "v"})
    # once per collaboration
    associate_namespace(alice, mid, mine)
    response = raises("ConflictException", associate_namespace, alice, mid, mine, name="again")
    assert response["reason"] == "ALREADY_EXISTS"
    other = collaborate(alice, bob)
    assert associate_namespace(alice, other.mid(alice), mine)["collaborationId"] == other.id
    raises("ResourceNotFoundException", alice.client.get_id_namespace_association, membershipIdentifier=mid,
           idNamespaceAssociationIdentifier=UNKNOWN_ID)
    raises("ResourceNotFoundException", alice.client.get_collaboration_id_namespace_association,
           collaborationIdentifier=collab.id, idNamespaceAssociationIdentifier=UNKNOWN_ID)


def test_id_namespace_association_quota_and_membership_deletion(server, world):
    _, bob, _, _, collab = world
    mid = collab.mid(bob)
    for i in range(10):
        arn = namespace_arn(bob, f"quota-{i}")
        define_namespace(server, arn, "SOURCE")
        associate_namespace(bob, mid, arn, name=f"n{i}")
    arn = namespace_arn(bob, "quota-10")
    define_namespace(server, arn, "SOURCE")
    response = raises("ServiceQuotaExceededException", associate_namespace, bob, mid, arn)
    assert (response["quotaName"], response["quotaValue"]) == ("ID namespace associations per membership", 10.0)
    response = raises("ConflictException", bob.client.delete_membership, membershipIdentifier=mid)
    assert "ID namespace association" in response["Error"]["Message"]


def test_id_namespace_association_pagination(server, world):
    alice, bob, carol, _, collab = world
    created = []
    for p, n in ((alice, 3), (bob, 2)):
        for i in range(n):
            arn = namespace_arn(p, f"page-{i}")
            define_namespace(server, arn, "SOURCE")
            created.append(associate_namespace(p, collab.mid(p), arn, name=f"{p.id}-{i}"))
    pages = list(alice.client.get_paginator("list_id_namespace_associations").paginate(
        membershipIdentifier=collab.mid(alice), PaginationConfig={"PageSize": 2}))
    assert [len(page["idNamespaceAssociationSummaries"]) for page in pages] == [2, 1]
    assert [s["id"] for page in pages for s in page["idNamespaceAssociationSummaries"]] == [
        a["id"] for a in reversed(created[:3])]  # newest first
    pages = list(carol.client.get_paginator("list_collaboration_id_namespace_associations").paginate(
        collaborationIdentifier=collab.id, PaginationConfig={"PageSize": 2}))
    assert [len(page["collaborationIdNamespaceAssociationSummaries"]) for page in pages] == [2, 2, 1]
    assert sorted(s["id"] for page in pages for s in page["collaborationIdNamespaceAssociationSummaries"]) == sorted(
        a["id"] for a in created)
    token = pages[0]["NextToken"] if "NextToken" in pages[0] else pages[0]["nextToken"]
    # a token is bound to its caller and request
    raises("ValidationException", bob.client.list_collaboration_id_namespace_associations,
           collaborationIdentifier=collab.id, nextToken=token)
    raises("ValidationException", alice.client.list_id_namespace_associations,
           membershipIdentifier=collab.mid(alice), nextToken="forged")
    raises("ValidationException", alice.client.list_id_namespace_associations,
           membershipIdentifier=collab.mid(alice), maxResults=101)


# ------------------------------------------------------------------------------------------------ mapping tables


def test_id_mapping_table_lifecycle_and_schema(server, mapped):
    (alice, bob, carol, dave, collab), a, b, workflow = mapped
    mid = collab.mid(alice)
    t = create_mapping_table(alice, mid, workflow, name="Customer Map", description="a map",
                             kmsKeyArn=f"arn:aws:kms:{REGION}:{alice.id}:key/abc-123", tags={"k": "v"})
    assert t["arn"] == f"arn:aws:cleanrooms:{REGION}:{alice.id}:membership/{mid}/idmappingtable/{t['id']}"
    assert (t["name"], t["description"], t["kmsKeyArn"]) == ("Customer Map", "a map",
                                                             f"arn:aws:kms:{REGION}:{alice.id}:key/abc-123")
    assert t["inputReferenceConfig"] == {"inputReferenceArn": workflow, "manageResourcePolicies": True}
    inputs = [{"idNamespaceAssociationId": a["id"], "type": "SOURCE"},
              {"idNamespaceAssociationId": b["id"], "type": "TARGET"}]
    assert t["inputReferenceProperties"] == {"idMappingTableInputSource": inputs}
    get = lambda: alice.client.get_id_mapping_table(  # noqa: E731
        membershipIdentifier=mid, idMappingTableIdentifier=t["id"])["idMappingTable"]
    assert get() == t
    [summary] = all_pages(alice.client, "list_id_mapping_tables", "idMappingTableSummaries", membershipIdentifier=mid)
    assert summary == {k: t[k] for k in ("collaborationArn", "collaborationId", "membershipId", "membershipArn",
                                         "createTime", "updateTime", "id", "arn", "description",
                                         "inputReferenceConfig", "name")}
    with server.db.read() as conn:  # (the ARN is longer than TagResource's resourceArn may be, as in AWS's model)
        assert tag_store.get(conn, t["arn"]) == {"k": "v"}

    # a schema of every member's collaboration, with the managed rule
    for p in (alice, bob, carol):
        schema = p.client.get_schema(collaborationIdentifier=collab.id, name="customer map")["schema"]
        assert schema["type"] == "ID_MAPPING_TABLE" and schema["name"] == "customer map"
        assert schema["columns"] == [{"name": "sourceid", "type": "string"}, {"name": "targetid", "type": "string"}]
        assert (schema["analysisRuleTypes"], schema["creatorAccountId"], schema["resourceArn"]) == (
            ["ID_MAPPING_TABLE"], alice.id, t["arn"])
        assert schema["schemaTypeProperties"] == {"idMappingTable": {"idMappingTableInputSource": inputs,
                                                                     "idMappingTableId": t["id"]}}
        [detail] = schema["schemaStatusDetails"]
        assert (detail["status"], detail["analysisType"], detail["analysisRuleType"]) == (
            "NOT_READY", "DIRECT_ANALYSIS", "ID_MAPPING_TABLE")
        assert [r["code"] for r in detail["reasons"]] == ["ID_MAPPING_TABLE_NOT_POPULATED"]
        rule = p.client.get_schema_analysis_rule(collaborationIdentifier=collab.id, name="Customer Map",
                                                 type="ID_MAPPING_TABLE")["analysisRule"]
        assert rule["policy"] == {"v1": {"idMappingTable": {
            "joinColumns": ["sourceid", "targetid"],
            "queryConstraints": [{"requireOverlap": {"columns": ["sourceid", "targetid"]}}],
            "dimensionColumns": []}}}
        assert "consolidatedPolicy" not in rule and "collaborationPolicy" not in rule
    raises("AccessDeniedException", dave.client.get_schema, collaborationIdentifier=collab.id, name="customer map")
    raises("ResourceNotFoundException", bob.client.get_schema_analysis_rule, collaborationIdentifier=collab.id,
           name="customer map", type="LIST")
    # ListSchemas: with or without the type filter, next to configured table associations
    table = create_table(bob)
    table_rule(bob, table["id"])
    associate(bob, collab.mid(bob), table["id"], name="customers")
    names = lambda **f: [s["name"] for s in all_pages(  # noqa: E731
        bob.client, "list_schemas", "schemaSummaries", collaborationIdentifier=collab.id, **f)]
    assert names() == ["customers", "customer map"]
    assert names(schemaType="ID_MAPPING_TABLE") == ["customer map"]
    assert names(schemaType="TABLE") == ["customers"]
    pages = list(bob.client.get_paginator("list_schemas").paginate(collaborationIdentifier=collab.id,
                                                                   PaginationConfig={"PageSize": 1}))
    assert [[s["name"] for s in page["schemaSummaries"]] for page in pages] == [["customers"], ["customer map"]]
    batch = bob.client.batch_get_schema(collaborationIdentifier=collab.id, names=["customer map", "customers", "no"])
    assert [s["name"] for s in batch["schemas"]] == ["customer map", "customers"]
    assert [e["name"] for e in batch["errors"]] == ["no"]
    rules = bob.client.batch_get_schema_analysis_rule(collaborationIdentifier=collab.id, schemaAnalysisRuleRequests=[
        {"name": "customer map", "type": "ID_MAPPING_TABLE"}, {"name": "customer map", "type": "CUSTOM"}])
    assert [r["name"] for r in rules["analysisRules"]] == ["customer map"]
    assert [(e["name"], e["type"]) for e in rules["errors"]] == [("customer map", "CUSTOM")]
    # the dimension columns follow the associations' idMappingConfig
    bob.client.update_id_namespace_association(membershipIdentifier=collab.mid(bob),
                                               idNamespaceAssociationIdentifier=b["id"],
                                               idMappingConfig={"allowUseAsDimensionColumn": True})
    rule = bob.client.get_schema_analysis_rule(collaborationIdentifier=collab.id, name="customer map",
                                               type="ID_MAPPING_TABLE")["analysisRule"]
    assert rule["policy"]["v1"]["idMappingTable"]["dimensionColumns"] == ["targetid"]

    time.sleep(0.01)
    updated = alice.client.update_id_mapping_table(membershipIdentifier=mid, idMappingTableIdentifier=t["id"],
                                                   description="new")["idMappingTable"]
    assert (updated["description"], updated["name"]) == ("new", t["name"])
    assert updated["updateTime"] > t["updateTime"] and get() == updated
    # an association in use cannot be deleted
    response = raises("ValidationException", bob.client.delete_id_namespace_association,
                      membershipIdentifier=collab.mid(bob), idNamespaceAssociationIdentifier=b["id"])
    assert "customer map" in response["Error"]["Message"].lower()

    response = alice.client.delete_id_mapping_table(membershipIdentifier=mid, idMappingTableIdentifier=t["id"])
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 204
    raises("ResourceNotFoundException", get)
    raises("ResourceNotFoundException", bob.client.get_schema, collaborationIdentifier=collab.id,
           name="customer map")
    assert names(schemaType="ID_MAPPING_TABLE") == []
    with server.db.read() as conn:
        assert tag_store.get(conn, t["arn"]) == {}
    bob.client.delete_id_namespace_association(membershipIdentifier=collab.mid(bob),
                                               idNamespaceAssociationIdentifier=b["id"])


def test_id_mapping_tables_are_the_owners_only(server, mapped):
    (alice, bob, carol, dave, collab), _, _, workflow = mapped
    t = create_mapping_table(alice, collab.mid(alice), workflow)
    for p, mid in ((bob, collab.mid(alice)), (dave, collab.mid(alice)), (bob, collab.mid(bob))):
        raises("ResourceNotFoundException", p.client.get_id_mapping_table, membershipIdentifier=mid,
               idMappingTableIdentifier=t["id"])
        raises("ResourceNotFoundException", p.client.update_id_mapping_table, membershipIdentifier=mid,
               idMappingTableIdentifier=t["id"], description="x")
        raises("ResourceNotFoundException", p.client.delete_id_mapping_table, membershipIdentifier=mid,
               idMappingTableIdentifier=t["id"])
        raises("ResourceNotFoundException", p.client.populate_id_mapping_table, membershipIdentifier=mid,
               idMappingTableIdentifier=t["id"])
    for p in (bob, dave):
        raises("ResourceNotFoundException", p.client.list_id_mapping_tables, membershipIdentifier=collab.mid(alice))
    assert bob.client.list_id_mapping_tables(membershipIdentifier=collab.mid(bob))["idMappingTableSummaries"] == []
    # Bob may make his own table from the same namespaces, with his own workflow
    bobs_workflow = workflow_arn(bob, "bobs")
    with server.db.read() as conn:
        sources = t["inputReferenceProperties"]["idMappingTableInputSource"]
        inputs = id_mapping_store.associations_by_ids(conn, [i["idNamespaceAssociationId"] for i in sources])
    arns = {row["namespace_type"]: row["input_reference_arn"] for row in inputs.values()}
    define_workflow(server, bobs_workflow, arns["SOURCE"], arns["TARGET"])
    response = raises("ConflictException", create_mapping_table, bob, collab.mid(bob), bobs_workflow)  # the name
    assert response["reason"] == "ALREADY_EXISTS"
    assert create_mapping_table(bob, collab.mid(bob), bobs_workflow, name="bobs")["name"] == "bobs"


def test_id_mapping_table_inputs_are_checked(server, mapped, account):
    (alice, bob, _, _, collab), a, b, workflow = mapped
    mid = collab.mid(alice)
    # a workflow of someone else, one the catalog does not define
    response = raises("ValidationException", create_mapping_table, alice, mid, workflow_arn(bob, "x"))
    assert field_names(response) == ["inputReferenceConfig.inputReferenceArn"]
    response = raises("ValidationException", create_mapping_table, alice, mid, workflow_arn(alice, "undefined"))
    assert "[[id_mapping_workflows]]" in response["Error"]["Message"]
    # a workflow whose namespaces are not (both) associated here, or are of the wrong type
    unassociated = namespace_arn(bob, "elsewhere")
    define_namespace(server, unassociated, "TARGET")
    define_workflow(server, workflow_arn(alice, "half"), a["inputReferenceConfig"]["inputReferenceArn"],
                    unassociated)
    response = raises("ValidationException", create_mapping_table, alice, mid, workflow_arn(alice, "half"))
    assert unassociated in response["Error"]["Message"]
    define_workflow(server, workflow_arn(alice, "reversed"), b["inputReferenceConfig"]["inputReferenceArn"],
                    a["inputReferenceConfig"]["inputReferenceArn"])
    raises("ValidationException", create_mapping_table, alice, mid, workflow_arn(alice, "reversed"))
    for name in ("bad/name", "-x"):
        response = raises("ValidationException", create_mapping_table, alice, mid, workflow, name=name)
        assert field_names(response) == ["name"]
    raises("ValidationException", create_mapping_table, alice, mid, workflow, kmsKeyArn="arn:aws:kms:nope" + "x" * 20)
    # names are shared with configured table associations, both ways and in any case
    table = create_table(alice)
    table_rule(alice, table["id"])
    associate(alice, mid, table["id"], name="customers")
    response = raises("ConflictException", create_mapping_table, alice, mid, workflow, name="Customers")
    assert response["reason"] == "ALREADY_EXISTS"
    create_mapping_table(alice, mid, workflow, name="Idmap")
    other = create_table(alice, name="other")
    table_rule(alice, other["id"])
    response = raises("ConflictException", associate, alice, mid, other["id"], name="idmap")
    assert response["reason"] == "ALREADY_EXISTS"
    # the quota: 5 per membership
    for i in range(4):
        create_mapping_table(alice, mid, workflow, name=f"m{i}")
    response = raises("ServiceQuotaExceededException", create_mapping_table, alice, mid, workflow, name="m5")
    assert (response["quotaName"], response["quotaValue"]) == ("ID mapping tables per membership", 5.0)
    pages = list(alice.client.get_paginator("list_id_mapping_tables").paginate(
        membershipIdentifier=mid, PaginationConfig={"PageSize": 2}))
    assert [len(p["idMappingTableSummaries"]) for p in pages] == [2, 2, 1]
    assert [s["name"] for p in pages for s in p["idMappingTableSummaries"]] == ["m3", "m2", "m1", "m0", "Idmap"]
    response = raises("ConflictException", alice.client.delete_membership, membershipIdentifier=mid)


# ------------------------------------------------------------------------------------------------ population


def _csv(path, text: str) -> str:
    path.write_text(text)
    return str(path)


@pytest.fixture
def populated_world(server, world, tmp_path):
    """Alice's CRM (SOURCE) and Bob's visitors (TARGET), matched on email and country after normalization."""
    alice, bob, carol, dave, collab = world
    return world, mapping_table(server, alice, bob, collab, tmp_path)


def mapping_table(server, alice, bob, collab, directory) -> dict:
    """Alice's crm.people and Bob's web.visitors in their catalogs, their namespaces associated, and Alice's ID
    mapping table `crm_visitors` from her workflow (not populated). The mapping: p1 -> v10, v11; p3 -> v13."""
    catalog_commands.add_table(server.db, account_id=alice.id, database="crm", table="people", location=_csv(
        directory / "people.csv",
        "person_id,email,country\n"
        "p1,  Ann@Example.COM ,FR\n"
        "p2,bob@example.com,fr\n"
        "p3,carl@example.com,DE\n"
        "p4,,DE\n"
        "p5,eve@example.com,US\n"))
    catalog_commands.add_table(server.db, account_id=bob.id, database="web", table="visitors", location=_csv(
        directory / "visitors.csv",
        "visitor,mail,cc\n"
        "v10,ann@example.com,fr\n"
        "v11,ANN@example.com,FR\n"
        "v12,bob@example.com,DE\n"
        "v13,carl@example.com ,de\n"
        "v14,,DE\n"))
    source, target = namespace_arn(alice, "crm"), namespace_arn(bob, "visitors")
    define_namespace(server, source, "SOURCE", database="crm", table="people", id_column="person_id",
                     key_columns=["email", "country"])
    define_namespace(server, target, "TARGET", database="web", table="visitors", id_column="visitor",
                     key_columns=["mail", "cc"])
    workflow = workflow_arn(alice, "crm-to-visitors")
    define_workflow(server, workflow, source, target)
    associate_namespace(alice, collab.mid(alice), source, name="crm")
    associate_namespace(bob, collab.mid(bob), target, name="visitors")
    return create_mapping_table(alice, collab.mid(alice), workflow, name="crm_visitors")


def _status(p, collab, name):
    [detail] = p.client.get_schema(collaborationIdentifier=collab.id, name=name)["schema"]["schemaStatusDetails"]
    return detail


def test_populate_maps_normalized_keys_exactly(server, populated_world):
    (alice, bob, _, _, collab), table = populated_world
    mid = collab.mid(alice)
    job = alice.client.populate_id_mapping_table(membershipIdentifier=mid, idMappingTableIdentifier=table["id"],
                                                 jobType="BATCH")["idMappingJobId"]
    assert len(job) == 36
    detail = _status(bob, collab, "crm_visitors")
    assert detail["status"] == "READY" and "reasons" not in detail
    with server.db.read() as conn:
        row = id_mapping_store.get_table(conn, mid, table["id"])
    assert (row["job_id"], row["job_status"], row["row_count"]) == (job, "SUCCEEDED", 3)
    pairs = duckdb.connect().execute(f"SELECT sourceid, targetid FROM read_parquet('{row['data_location']}') "
                                     "ORDER BY 1, 2").fetchall()
    # trimmed and lower-cased keys match; empty keys and different countries do not
    assert pairs == [("p1", "v10"), ("p1", "v11"), ("p3", "v13")]
    # populating again (INCREMENTAL runs as a full BATCH here) replaces the data with a new job's
    again = alice.client.populate_id_mapping_table(membershipIdentifier=mid,
                                                   idMappingTableIdentifier=table["id"])["idMappingJobId"]
    with server.db.read() as conn:
        newer = id_mapping_store.get_table(conn, mid, table["id"])
    assert again != job and newer["job_id"] == again and newer["row_count"] == 3
    import os
    assert os.path.exists(newer["data_location"]) and not os.path.exists(row["data_location"])
    alice.client.delete_id_mapping_table(membershipIdentifier=mid, idMappingTableIdentifier=table["id"])
    assert not os.path.exists(newer["data_location"])


def test_populate_says_what_is_missing(server, populated_world, tmp_path):
    (alice, bob, _, _, collab), table = populated_world
    mid = collab.mid(alice)
    populate = lambda **kw: alice.client.populate_id_mapping_table(  # noqa: E731
        membershipIdentifier=mid, idMappingTableIdentifier=table["id"], **kw)
    response = raises("ValidationException", populate, jobType="DELETE_ONLY")
    assert field_names(response) == ["jobType"]
    raises("ValidationException", populate, jobType="SOMETIMES")
    target = namespace_arn(bob, "visitors")
    # a namespace with no local data: AWS Entity Resolution would read it; here the message says what is missing
    define_namespace(server, target, "TARGET")
    message = raises("ValidationException", populate)["Error"]["Message"]
    assert target in message and "database, table, id_column, key_columns" in message
    # a table missing from the owner's catalog, a column missing from the table, key columns that do not pair
    define_namespace(server, target, "TARGET", database="web", table="gone", id_column="visitor",
                     key_columns=["mail", "cc"])
    assert "not in the catalog of account" in raises("ValidationException", populate)["Error"]["Message"]
    define_namespace(server, target, "TARGET", database="web", table="visitors", id_column="visitor",
                     key_columns=["mail", "phone"])
    assert "no column(s) phone" in raises("ValidationException", populate)["Error"]["Message"]
    define_namespace(server, target, "TARGET", database="web", table="visitors", id_column="visitor",
                     key_columns=["mail"])
    assert "key column" in raises("ValidationException", populate)["Error"]["Message"]
    detail = _status(bob, collab, "crm_visitors")
    assert detail["status"] == "NOT_READY"
    assert "has not been populated" in detail["reasons"][0]["message"]
    # a job that fails while it runs is reported through the schema's status
    # (the schema is read from the first file; the second does not have its columns)
    (tmp_path / "parts").mkdir()
    _csv(tmp_path / "parts" / "a.csv", "visitor,mail,cc\nv1,a@b.c,fr\n")
    _csv(tmp_path / "parts" / "b.csv", "other\n1\n")
    catalog_commands.add_table(server.db, account_id=bob.id, database="web", table="visitors",
                               location=str(tmp_path / "parts") + "/")
    define_namespace(server, target, "TARGET", database="web", table="visitors", id_column="visitor",
                     key_columns=["mail", "cc"])
    job = populate()["idMappingJobId"]
    detail = _status(bob, collab, "crm_visitors")
    assert detail["status"] == "NOT_READY" and job in detail["reasons"][0]["message"]
    assert "failed" in detail["reasons"][0]["message"]


def test_catalog_file_defines_namespaces_and_workflows(server, account, tmp_path):
    p = account()
    source, target = namespace_arn(p, "a"), namespace_arn(p, "b")
    path = tmp_path / "catalog.toml"
    path.write_text(f'''
[[id_namespaces]]
arn = "{source}"
type = "SOURCE"
database = "advertiser"
table = "customers"
id_column = "user_id"
key_columns = ["email_hash"]

[[id_namespaces]]
arn = "{target}"
type = "TARGET"

[[id_mapping_workflows]]
arn = "{workflow_arn(p, 'w')}"
source = "{source}"
target = "{target}"
''')
    catalog_commands.import_file(server.db, path)
    with server.db.read() as conn:
        ns = entity_resolution.get_namespace(conn, source)
        assert (ns.type, ns.database, ns.table, ns.id_column, ns.key_columns) == (
            "SOURCE", "advertiser", "customers", "user_id", ("email_hash",))
        assert entity_resolution.get_namespace(conn, target).missing() == [
            "database", "table", "id_column", "key_columns"]
        assert entity_resolution.get_workflow(conn, workflow_arn(p, "w")).target_arn == target
    path.write_text('[[id_namespaces]]\narn = "arn:aws:s3:::x"\ntype = "SOURCE"\n')
    with pytest.raises(ValueError, match="id_namespaces 1"):
        catalog_commands.import_file(server.db, path)


# ------------------------------------------------------------------------------------------------ queries

ROLE = "arn:aws:iam::111122223333:role/cleanrooms-table-access"
THROUGH_MAPPING = ("FROM people p JOIN crm_visitors m ON p.person_id = m.sourceid "
                   "JOIN visitors v ON v.visitor = m.targetid")


def _queryable(p, collab, database, table, columns, runner, receiver, rule_type="CUSTOM", rule=None):
    """`p`'s catalog table `database.table` as a configured table association named `table` with a rule of
    `rule_type` (by default CUSTOM: any query of `runner`), whose results `receiver` may receive."""
    member = {"AGGREGATION": "aggregation", "LIST": "list", "CUSTOM": "custom"}[rule_type]
    configured = p.client.create_configured_table(
        name=table, tableReference={"glue": {"databaseName": database, "tableName": table}},
        allowedColumns=columns, analysisMethod="DIRECT_QUERY")["configuredTable"]
    p.client.create_configured_table_analysis_rule(
        configuredTableIdentifier=configured["id"], analysisRuleType=rule_type, analysisRulePolicy={"v1": {
            member: rule or {"allowedAnalyses": ["ANY_QUERY"], "allowedAnalysisProviders": [runner.id]}}})
    association = p.client.create_configured_table_association(
        membershipIdentifier=collab.mid(p), configuredTableIdentifier=configured["id"], name=table,
        roleArn=ROLE)["configuredTableAssociation"]
    p.client.create_configured_table_association_analysis_rule(
        membershipIdentifier=collab.mid(p), configuredTableAssociationIdentifier=association["id"],
        analysisRuleType=rule_type, analysisRulePolicy={"v1": {member: {"allowedResultReceivers": [receiver.id]}}})
    return association


@pytest.fixture
def query_world(server, populated_world):
    """populated_world with Alice's people and Bob's visitors queryable by Alice (CUSTOM rules), results to Bob."""
    (alice, bob, carol, dave, collab), table = populated_world
    make_queryable(alice, bob, collab)
    return (alice, bob, carol, dave, collab), table


def make_queryable(alice, bob, collab, visitors_rule=None) -> None:
    """Alice's people and Bob's visitors as associations with CUSTOM rules (any query of Alice's, or
    `visitors_rule` for Bob's), results to Bob."""
    _queryable(alice, collab, "crm", "people", ["person_id", "email", "country"], alice, bob)
    _queryable(bob, collab, "web", "visitors", ["visitor", "mail", "cc"], alice, bob, rule=visitors_rule)
    bob.client.update_membership(membershipIdentifier=collab.mid(bob), defaultResultConfiguration={
        "outputConfiguration": {"s3": {"bucket": "bob-results", "resultFormat": "CSV"}}})


def run_query(server, alice, bob, collab, sql, timeout: float = 60) -> tuple[dict, list[tuple] | None]:
    """Run `sql` as Alice with the result sent to Bob: the query as Alice sees it at its end, and Bob's rows."""
    from opencleanrooms.results import read_result

    query = alice.client.start_protected_query(
        membershipIdentifier=collab.mid(alice), type="SQL", sqlParameters={"queryString": sql},
        resultConfiguration={"outputConfiguration": {"member": {"accountId": bob.id}}})["protectedQuery"]
    done = wait(alice.client, collab.mid(alice), query["id"], timeout)
    if done["status"] != "SUCCESS":
        return done, None
    delivered = read_result((server.data_dir / "results" / "bob-results" / query["id"]).as_uri())
    return done, sorted(tuple(str(v) for v in r.values()) for r in delivered.to_pylist())


def test_an_unpopulated_mapping_table_cannot_be_queried(server, query_world):
    (alice, bob, _, _, collab), table = query_world
    done, _ = run_query(server, alice, bob, collab, f"SELECT p.person_id, v.visitor {THROUGH_MAPPING}")
    assert done["status"] == "FAILED" and done["error"]["code"] == "INVALID_RESOURCE", done
    assert "crm_visitors" in done["error"]["message"] and "not been populated" in done["error"]["message"]


def test_a_mapping_table_of_another_collaboration_is_unknown(server, query_world):
    (alice, bob, _, _, collab), table = query_world
    alice.client.populate_id_mapping_table(membershipIdentifier=collab.mid(alice), idMappingTableIdentifier=table["id"])
    other = collaborate(alice, bob)
    make_queryable(alice, bob, other)
    done, _ = run_query(server, alice, bob, other, f"SELECT p.person_id, v.visitor {THROUGH_MAPPING}")
    assert done["status"] == "FAILED" and done["error"]["code"] == "RESOURCE_NOT_FOUND", done
    assert "crm_visitors" in done["error"]["message"]


def test_differential_privacy_queries_cannot_read_a_mapping_table(server, populated_world):
    (alice, bob, _, _, collab), table = populated_world
    alice.client.populate_id_mapping_table(membershipIdentifier=collab.mid(alice), idMappingTableIdentifier=table["id"])
    make_queryable(alice, bob, collab, visitors_rule={
        "allowedAnalyses": ["ANY_QUERY"], "allowedAnalysisProviders": [alice.id],
        "differentialPrivacy": {"columns": [{"name": "visitor"}]}})
    done, _ = run_query(server, alice, bob, collab, f"SELECT COUNT(DISTINCT v.visitor) AS n {THROUGH_MAPPING}")
    assert done["status"] == "FAILED" and done["error"]["code"] == "INVALID_RESOURCE", done
    assert "Differential privacy" in done["error"]["message"]


def test_custom_queries_read_the_overlap_through_the_mapping_table(server, query_world):
    (alice, bob, _, _, collab), table = query_world
    alice.client.populate_id_mapping_table(membershipIdentifier=collab.mid(alice), idMappingTableIdentifier=table["id"])
    # the documented shape: only the mapped pairs (p1 -> v10, v11; p3 -> v13) are read
    done, rows = run_query(server, alice, bob, collab, f"SELECT p.person_id, v.visitor {THROUGH_MAPPING}")
    assert done["status"] == "SUCCESS", done
    assert rows == [("p1", "v10"), ("p1", "v11"), ("p3", "v13")]
    assert done["result"] == {"output": {"memberList": [{"accountId": bob.id}]}}
    # an aggregate over the overlap, with LEFT JOIN on the mapping table's inner side
    done, rows = run_query(server, alice, bob, collab,
                           "SELECT p.country, COUNT(DISTINCT v.visitor) AS visitors FROM people p "
                           "LEFT JOIN crm_visitors m ON p.person_id = m.sourceid JOIN visitors v ON v.visitor = "
                           "m.targetid GROUP BY p.country")
    assert rows == [("DE", "1"), ("FR", "2")], done
    # Bob sees the query meant for him
    seen = bob.client.get_protected_query(membershipIdentifier=collab.mid(bob),
                                          protectedQueryIdentifier=done["id"])["protectedQuery"]
    assert seen["status"] == "SUCCESS"


@pytest.mark.parametrize("sql, contains", [
    ("SELECT p.person_id FROM crm_visitors m LEFT JOIN people p ON p.person_id = m.sourceid "
     "JOIN visitors v ON v.visitor = m.targetid", "inner side"),
    (f"SELECT m.sourceid, v.visitor {THROUGH_MAPPING}", "`sourceid`"),
    (f"SELECT p.person_id {THROUGH_MAPPING} WHERE m.targetid = 'v10'", "`targetid`"),
    ("SELECT p.person_id FROM people p JOIN crm_visitors m ON p.person_id = m.sourceid", "both sides"),
    ("SELECT p.person_id FROM people p CROSS JOIN crm_visitors m", "CROSS JOIN"),
])
def test_refused_shapes_end_failed_and_nothing_runs(server, query_world, sql, contains):
    (alice, bob, _, _, collab), table = query_world
    alice.client.populate_id_mapping_table(membershipIdentifier=collab.mid(alice), idMappingTableIdentifier=table["id"])
    done, _ = run_query(server, alice, bob, collab, sql)
    assert done["status"] == "FAILED" and done["error"]["code"] == "MALFORMED_QUERY", done
    assert contains in done["error"]["message"], done
    assert not (server.data_dir / "results" / "bob-results" / done["id"]).exists()


def test_an_id_column_is_a_dimension_when_its_namespace_association_allows_it(server, query_world):
    (alice, bob, _, _, collab), table = query_world
    alice.client.populate_id_mapping_table(membershipIdentifier=collab.mid(alice), idMappingTableIdentifier=table["id"])
    sql = f"SELECT m.sourceid, COUNT(*) AS visitors {THROUGH_MAPPING} GROUP BY m.sourceid"
    done, _ = run_query(server, alice, bob, collab, sql)
    assert done["status"] == "FAILED" and "`sourceid`" in done["error"]["message"], done
    [source] = [a for a in alice.client.list_id_namespace_associations(
        membershipIdentifier=collab.mid(alice))["idNamespaceAssociationSummaries"] if a["name"] == "crm"]
    alice.client.update_id_namespace_association(membershipIdentifier=collab.mid(alice),
                                                 idNamespaceAssociationIdentifier=source["id"],
                                                 idMappingConfig={"allowUseAsDimensionColumn": True})
    rule = bob.client.get_schema_analysis_rule(collaborationIdentifier=collab.id, name="crm_visitors",
                                               type="ID_MAPPING_TABLE")["analysisRule"]
    assert rule["policy"]["v1"]["idMappingTable"]["dimensionColumns"] == ["sourceid"]
    done, rows = run_query(server, alice, bob, collab, sql)
    assert rows == [("p1", "2"), ("p3", "1")], done
    # the other ID column is still for joins only
    done, _ = run_query(server, alice, bob, collab, f"SELECT m.targetid {THROUGH_MAPPING}")
    assert done["status"] == "FAILED" and "`targetid`" in done["error"]["message"], done


def test_an_intermediate_table_can_be_populated_through_the_mapping_table(server, query_world):
    """The population depends on the mapping table (BaseTableDependencyType ID_MAPPING_TABLE), which adds no
    inherited constraint; the tables it joins do."""
    (alice, bob, _, _, collab), table = query_world
    alice.client.populate_id_mapping_table(membershipIdentifier=collab.mid(alice), idMappingTableIdentifier=table["id"])
    created = alice.client.create_intermediate_table(
        membershipIdentifier=collab.mid(alice), name="mapped_pairs", populationAnalysisConfiguration={
            "sqlParameters": {"queryString": f"SELECT p.country, v.visitor {THROUGH_MAPPING}"}})["intermediateTable"]
    out = alice.client.populate_intermediate_table(membershipIdentifier=collab.mid(alice),
                                                   intermediateTableIdentifier=created["id"])
    done = wait(alice.client, collab.mid(alice), out["analysisId"])
    assert done["status"] == "SUCCESS", done
    got = alice.client.get_intermediate_table(membershipIdentifier=collab.mid(alice),
                                              intermediateTableIdentifier=created["id"])["intermediateTable"]
    assert sorted((d["name"], d["type"], d["parentType"], d["creatorAccountId"]) for d in got["tableDependencies"]) \
        == [("crm_visitors", "ID_MAPPING_TABLE", "DIRECT", alice.id), ("people", "TABLE", "DIRECT", alice.id),
            ("visitors", "TABLE", "DIRECT", bob.id)]
    receivers = got["intermediateTableVersion"]["inheritedConstraints"]["allowedResultReceivers"]
    assert receivers["value"] == [bob.id] and {s["name"] for s in receivers["sources"]} == {"people", "visitors"}
    # deleting the mapping table removes a base table of the intermediate table
    alice.client.delete_id_mapping_table(membershipIdentifier=collab.mid(alice), idMappingTableIdentifier=table["id"])
    got = alice.client.get_intermediate_table(membershipIdentifier=collab.mid(alice),
                                              intermediateTableIdentifier=created["id"])["intermediateTable"]
    assert got["status"] == "BASE_TABLE_REMOVED" and "crm_visitors" in got["statusReason"], got


def test_an_analysis_template_reads_through_the_mapping_table(server, populated_world):
    """A CUSTOM rule that allows only one analysis template: the template may name the ID mapping table."""
    (alice, bob, _, _, collab), table = populated_world
    alice.client.populate_id_mapping_table(membershipIdentifier=collab.mid(alice), idMappingTableIdentifier=table["id"])
    associations = [(alice, _queryable(alice, collab, "crm", "people", ["person_id", "email", "country"], alice, bob)),
                    (bob, _queryable(bob, collab, "web", "visitors", ["visitor", "mail", "cc"], alice, bob))]
    template = alice.client.create_analysis_template(
        membershipIdentifier=collab.mid(alice), name="pairs", format="SQL",
        source={"text": f"SELECT p.person_id, v.visitor {THROUGH_MAPPING} WHERE v.cc = :cc"},
        analysisParameters=[{"name": "cc", "type": "VARCHAR"}])["analysisTemplate"]
    for p, association in associations:
        p.client.update_configured_table_analysis_rule(
            configuredTableIdentifier=association["configuredTableId"], analysisRuleType="CUSTOM",
            analysisRulePolicy={"v1": {"custom": {"allowedAnalyses": [template["arn"]]}}})
    bob.client.update_membership(membershipIdentifier=collab.mid(bob), defaultResultConfiguration={
        "outputConfiguration": {"s3": {"bucket": "bob-results", "resultFormat": "CSV"}}})
    query = alice.client.start_protected_query(
        membershipIdentifier=collab.mid(alice), type="SQL",
        sqlParameters={"analysisTemplateArn": template["arn"], "parameters": {"cc": "fr"}},
        resultConfiguration={"outputConfiguration": {"member": {"accountId": bob.id}}})["protectedQuery"]
    done = wait(alice.client, collab.mid(alice), query["id"])
    assert done["status"] == "SUCCESS", done
    from opencleanrooms.results import read_result
    delivered = read_result((server.data_dir / "results" / "bob-results" / query["id"]).as_uri())
    assert sorted(tuple(r.values()) for r in delivered.to_pylist()) == [("p1", "v10")]  # v11's cc is FR
    # the same SQL written by Alice is not an allowed analysis
    done, _ = run_query(server, alice, bob, collab, f"SELECT p.person_id, v.visitor {THROUGH_MAPPING}")
    assert done["status"] == "FAILED" and done["error"]["code"] == "RESOURCE_ACCESS_DENIED", done
    # a template naming an unknown table is still refused
    with pytest.raises(Exception, match="not configured table associations"):
        alice.client.create_analysis_template(
            membershipIdentifier=collab.mid(alice), name="bad", format="SQL",
            source={"text": "SELECT p.person_id FROM people p JOIN nowhere n ON p.person_id = n.sourceid"})


def test_access_budgets_of_the_joined_tables_are_spent_and_the_mapping_table_has_none(server, populated_world):
    (alice, bob, _, _, collab), table = populated_world
    alice.client.populate_id_mapping_table(membershipIdentifier=collab.mid(alice), idMappingTableIdentifier=table["id"])
    _queryable(alice, collab, "crm", "people", ["person_id", "email", "country"], alice, bob)
    visitors = _queryable(bob, collab, "web", "visitors", ["visitor", "mail", "cc"], alice, bob)
    bob.client.update_membership(membershipIdentifier=collab.mid(bob), defaultResultConfiguration={
        "outputConfiguration": {"s3": {"bucket": "bob-results", "resultFormat": "CSV"}}})
    bob.client.create_privacy_budget_template(
        membershipIdentifier=collab.mid(bob), privacyBudgetType="ACCESS_BUDGET", autoRefresh="NONE",
        parameters={"accessBudget": {"resourceArn": f"arn:aws:cleanrooms:{REGION}:{bob.id}:membership/"
                                                    f"{collab.mid(bob)}/configuredtableassociation/{visitors['id']}",
                                     "budgetParameters": [{"type": "LIFETIME", "budget": 1}]}})
    sql = f"SELECT p.country, COUNT(*) AS n {THROUGH_MAPPING} GROUP BY p.country"
    done, rows = run_query(server, alice, bob, collab, sql)
    assert rows == [("DE", "1"), ("FR", "2")], done
    done, _ = run_query(server, alice, bob, collab, sql)
    assert done["status"] == "FAILED" and done["error"]["code"] == "INVALID_RESOURCE", done
    assert "budget" in done["error"]["message"].lower()
    # the mapping table and Alice's table have no budget: a query of them alone is not refused for one
    done, rows = run_query(server, alice, bob, collab, "SELECT p.country, COUNT(*) AS n FROM people p "
                        "JOIN crm_visitors m ON p.person_id = m.sourceid JOIN people q ON q.person_id = m.targetid "
                        "GROUP BY p.country")
    assert done["status"] == "SUCCESS" and rows == [], done  # no person id is also a visitor id


def test_aggregation_queries_read_through_the_mapping_table(server, populated_world):
    """The mapping table inherits the AGGREGATION rule of the others, whose output constraints still apply."""
    (alice, bob, _, _, collab), table = populated_world
    alice.client.populate_id_mapping_table(membershipIdentifier=collab.mid(alice), idMappingTableIdentifier=table["id"])
    for p, database, name, columns in ((alice, "crm", "people", ["person_id", "email", "country"]),
                                       (bob, "web", "visitors", ["visitor", "mail", "cc"])):
        _queryable(p, collab, database, name, columns, alice, bob, "AGGREGATION", {
            "aggregateColumns": [{"columnNames": [columns[0]], "function": "COUNT_DISTINCT"}],
            "joinColumns": [columns[0]], "dimensionColumns": [columns[2]], "scalarFunctions": [],
            "outputConstraints": [{"columnName": columns[0], "minimum": 2, "type": "COUNT_DISTINCT"}]})
    bob.client.update_membership(membershipIdentifier=collab.mid(bob), defaultResultConfiguration={
        "outputConfiguration": {"s3": {"bucket": "bob-results", "resultFormat": "CSV"}}})
    done, rows = run_query(server, alice, bob, collab,
                           f"SELECT COUNT(DISTINCT v.visitor) AS visitors {THROUGH_MAPPING}")
    assert rows == [("3",)], done  # people p1, p3 (2); visitors v10, v11, v13
    # per country, FR has one person (p1) and DE one visitor (v13): both groups are below a minimum of 2
    done, rows = run_query(server, alice, bob, collab,
                        f"SELECT p.country, COUNT(DISTINCT v.visitor) AS n {THROUGH_MAPPING} GROUP BY p.country")
    assert rows == [], done
    # AGGREGATION allows INNER JOIN only, whatever the mapping table allows
    done, _ = run_query(server, alice, bob, collab,
                     "SELECT COUNT(DISTINCT v.visitor) AS n FROM people p LEFT JOIN crm_visitors m "
                     "ON p.person_id = m.sourceid JOIN visitors v ON v.visitor = m.targetid")
    assert done["status"] == "FAILED" and "LEFT JOIN is not allowed" in done["error"]["message"], done


def test_concurrent_writes_keep_one_association_per_namespace_and_one_job_at_a_time(server, populated_world, account):
    """Several clients at once: a namespace is associated once; populations do not overlap (each either runs or is
    refused with ConflictException) and leave exactly the last successful job's data."""
    import os
    from concurrent.futures import ThreadPoolExecutor

    import botocore

    (alice, bob, _, _, collab), table = populated_world
    arn = namespace_arn(bob, "contended")
    define_namespace(server, arn, "SOURCE")
    clients = [server.client(bob.account) for _ in range(6)]

    def create(i):
        try:
            return clients[i].create_id_namespace_association(
                membershipIdentifier=collab.mid(bob), name=f"n{i}",
                inputReferenceConfig={"inputReferenceArn": arn, "manageResourcePolicies": True})
        except botocore.exceptions.ClientError as exc:
            return exc.response["Error"]["Code"]

    with ThreadPoolExecutor(6) as pool:
        outcomes = list(pool.map(create, range(6)))
    assert sum(isinstance(o, dict) for o in outcomes) == 1
    assert sorted(o for o in outcomes if not isinstance(o, dict)) == ["ConflictException"] * 5

    populators = [server.client(alice.account) for _ in range(4)]

    def populate(i):
        try:
            return populators[i].populate_id_mapping_table(membershipIdentifier=collab.mid(alice),
                                                           idMappingTableIdentifier=table["id"])["idMappingJobId"]
        except botocore.exceptions.ClientError as exc:
            return exc.response["Error"]["Code"]

    with ThreadPoolExecutor(4) as pool:
        jobs = list(pool.map(populate, range(4)))
    assert all(len(j) == 36 or j == "ConflictException" for j in jobs), jobs
    with server.db.read() as conn:
        row = id_mapping_store.get_table(conn, collab.mid(alice), table["id"])
    assert row["job_status"] == "SUCCEEDED" and row["job_id"] in jobs and row["row_count"] == 3
    assert os.listdir(os.path.dirname(row["data_location"])) == [os.path.basename(row["data_location"])]


def test_updates_are_validated_and_schemas_follow_the_owners_membership(server, mapped):
    (alice, bob, carol, _, collab), a, b, workflow = mapped
    # Bob owns the TARGET association; Bob's ID mapping table, from his own workflow over the same namespaces
    bobs_workflow = workflow_arn(bob, "bob-to")
    define_workflow(server, bobs_workflow, a["inputReferenceConfig"]["inputReferenceArn"],
                    b["inputReferenceConfig"]["inputReferenceArn"])
    t = create_mapping_table(bob, collab.mid(bob), bobs_workflow, name="bobs_map")
    for extra, field in (({"name": "  "}, "name"), ({"name": "x" * 101}, "name"),
                         ({"description": "x" * 256}, "description")):
        response = raises("ValidationException", bob.client.update_id_namespace_association,
                          membershipIdentifier=collab.mid(bob), idNamespaceAssociationIdentifier=b["id"], **extra)
        assert field_names(response) == [field], extra
    for extra, field in (({"description": "\x01"}, "description"), ({"kmsKeyArn": "arn:aws:kms:us-east-1:1:key/x" + "y" * 10}, "kmsKeyArn")):
        response = raises("ValidationException", bob.client.update_id_mapping_table,
                          membershipIdentifier=collab.mid(bob), idMappingTableIdentifier=t["id"], **extra)
        assert field_names(response) == [field], extra
    for call in (bob.client.get_id_mapping_table, bob.client.populate_id_mapping_table,
                 bob.client.delete_id_mapping_table):
        response = raises("ResourceNotFoundException", call, membershipIdentifier=collab.mid(bob),
                          idMappingTableIdentifier=UNKNOWN_ID)
        assert (response["resourceId"], response["resourceType"]) == (UNKNOWN_ID, "MEMBERSHIP")
    assert [s["name"] for s in carol.client.list_schemas(collaborationIdentifier=collab.id)["schemaSummaries"]] == [
        "bobs_map"]
    # once Bob is removed his table is no relation of the collaboration; he can still read and delete it
    alice.client.delete_member(collaborationIdentifier=collab.id, accountId=bob.id)
    assert carol.client.list_schemas(collaborationIdentifier=collab.id)["schemaSummaries"] == []
    raises("ResourceNotFoundException", carol.client.get_schema, collaborationIdentifier=collab.id, name="bobs_map")
    response = raises("ConflictException", bob.client.populate_id_mapping_table, membershipIdentifier=collab.mid(bob),
                      idMappingTableIdentifier=t["id"])
    assert response["reason"] == "INVALID_STATE"
    assert bob.client.update_id_mapping_table(membershipIdentifier=collab.mid(bob), idMappingTableIdentifier=t["id"],
                                              description="still mine")["idMappingTable"]["description"] == "still mine"
    bob.client.delete_id_mapping_table(membershipIdentifier=collab.mid(bob), idMappingTableIdentifier=t["id"])
    bob.client.delete_id_namespace_association(membershipIdentifier=collab.mid(bob),
                                               idNamespaceAssociationIdentifier=b["id"])
    bob.client.delete_membership(membershipIdentifier=collab.mid(bob))
