"""Configured table associations and their collaboration analysis rules over HTTP, with several accounts.

Every account registers the sample tables shipped in `opencleanrooms/samples/` in its own catalog, creates configured
tables over them and associates them with collaborations it is in. Responses are checked against the model, except
for one constraint the model cannot meet (see `_client`). The helpers here are shared with test_schemas.py.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from importlib import resources

import pytest

from opencleanrooms.catalog import commands as catalog_commands
from opencleanrooms.errors import ServiceError
from opencleanrooms.services import tags as tag_service
from opencleanrooms.services.context import RequestContext
from opencleanrooms.services.pagination import PageTokens
from opencleanrooms.services.quotas import Quotas
from opencleanrooms.services.registry import load_all
from opencleanrooms.storage import table_associations as association_store
from opencleanrooms.storage import tags as tag_store
from tests.support.builders import all_pages, raises

UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"
SAMPLES = resources.files("opencleanrooms.samples")
CUSTOMERS = {"glue": {"databaseName": "advertiser", "tableName": "customers"}}
IMPRESSIONS = {"glue": {"databaseName": "publisher", "tableName": "impressions"}}
CUSTOMER_COLUMNS = ["user_id", "segment", "age_band", "lifetime_value", "signup_date"]
IMPRESSION_COLUMNS = ["user_id", "campaign_id", "impression_time", "clicks", "spend"]
ROLE = "arn:aws:iam::111122223333:role/cleanrooms-table-access"
ROLE_2 = "arn:aws:iam::111122223333:role/cleanrooms-table-access-2"
class Account:
    """An account with a checked client and both sample tables in its own catalog."""

    def __init__(self, server) -> None:
        self.account = server.new_account()
        self.id = self.account.account_id
        self.client = server.client(self.account)
        for database, table, name in (("advertiser", "customers", "customers.parquet"),
                                      ("publisher", "impressions", "impressions.csv")):
            catalog_commands.add_table(server.db, account_id=self.id, database=database, table=table,
                                       location=str(SAMPLES.joinpath(name)))


@pytest.fixture
def account(server):
    """Factory: account() -> a new account with the sample tables in its catalog."""
    return lambda: Account(server)


@dataclass
class Collab:
    collaboration: dict
    memberships: dict  # account id -> the membership of each account that joined

    @property
    def id(self) -> str:
        return self.collaboration["id"]

    def mid(self, who) -> str:
        return self.memberships[who.id]["id"]


def collaborate(creator, *others, creator_abilities=("CAN_QUERY",), abilities=("CAN_RECEIVE_RESULTS",),
                invited=(), **extra) -> Collab:
    """A collaboration of `creator` and `others` (all joined) and `invited` (invited, never joined)."""
    members = [{"accountId": p.id, "memberAbilities": list(abilities), "displayName": f"member {p.id}"}
               for p in (*others, *invited)]
    collaboration = creator.client.create_collaboration(
        members=members, name="retail", description="a collaboration", creatorDisplayName=f"creator {creator.id}",
        creatorMemberAbilities=list(creator_abilities), queryLogStatus="DISABLED", **extra)["collaboration"]
    memberships = {p.id: p.client.create_membership(collaborationIdentifier=collaboration["id"],
                                                    queryLogStatus="DISABLED")["membership"]
                   for p in (creator, *others)}
    return Collab(collaboration, memberships)


def create_table(p, name="customers", reference=None, columns=None, **extra) -> dict:
    reference = reference or CUSTOMERS
    if columns is None:
        columns = CUSTOMER_COLUMNS if reference is CUSTOMERS else IMPRESSION_COLUMNS
    return p.client.create_configured_table(name=name, tableReference=reference, allowedColumns=list(columns),
                                            analysisMethod="DIRECT_QUERY", **extra)["configuredTable"]


def list_policy(**changes) -> dict:
    body = {"joinColumns": ["user_id"], "listColumns": ["segment", "age_band"]}
    body.update(changes)
    return {"v1": {"list": body}}


def aggregation_policy(**changes) -> dict:
    body = {"aggregateColumns": [{"columnNames": ["lifetime_value"], "function": "SUM"}],
            "joinColumns": ["user_id"], "dimensionColumns": ["segment"], "scalarFunctions": [],
            "outputConstraints": [{"columnName": "user_id", "minimum": 2, "type": "COUNT_DISTINCT"}]}
    body.update(changes)
    return {"v1": {"aggregation": body}}


def custom_policy(**changes) -> dict:
    body = {"allowedAnalyses": ["ANY_QUERY"], "allowedAnalysisProviders": ["444455556666"]}
    body.update(changes)
    return {"v1": {"custom": {k: v for k, v in body.items() if v is not None}}}


TABLE_POLICIES = {"LIST": list_policy, "AGGREGATION": aggregation_policy, "CUSTOM": custom_policy}


def table_rule(p, table_id, rule_type="LIST", policy=None) -> dict:
    return p.client.create_configured_table_analysis_rule(
        configuredTableIdentifier=table_id, analysisRuleType=rule_type,
        analysisRulePolicy=policy or TABLE_POLICIES[rule_type]())["analysisRule"]


def associate(p, membership_id, table_id, name="customers", **extra) -> dict:
    extra.setdefault("roleArn", ROLE)
    return p.client.create_configured_table_association(membershipIdentifier=membership_id,
                                                        configuredTableIdentifier=table_id, name=name,
                                                        **extra)["configuredTableAssociation"]


def collaboration_rule(p, membership_id, association_id, rule_type="LIST", **body) -> dict:
    member = {"LIST": "list", "AGGREGATION": "aggregation", "CUSTOM": "custom"}[rule_type]
    return p.client.create_configured_table_association_analysis_rule(
        membershipIdentifier=membership_id, configuredTableAssociationIdentifier=association_id,
        analysisRuleType=rule_type, analysisRulePolicy={"v1": {member: body}})["analysisRule"]


def get_association(p, membership_id, association_id) -> dict:
    return p.client.get_configured_table_association(
        membershipIdentifier=membership_id,
        configuredTableAssociationIdentifier=association_id)["configuredTableAssociation"]


def summaries(p, membership_id) -> list[dict]:
    return all_pages(p.client, "list_configured_table_associations", "configuredTableAssociationSummaries",
                     membershipIdentifier=membership_id)


def field_names(response) -> list[str]:
    return [f["name"] for f in response.get("fieldList") or []]


@pytest.fixture
def pair(account):
    """Alice (creator, can query) and Bob (receives results), both joined, each with a configured table over its
    own copy of the customers sample that has a LIST rule."""
    alice, bob = account(), account()
    collab = collaborate(alice, bob)
    tables = {}
    for p in (alice, bob):
        tables[p.id] = create_table(p)
        table_rule(p, tables[p.id]["id"])
    return alice, bob, collab, tables


# ------------------------------------------------------------------------------------------------ associations


def test_association_lifecycle(server, pair):
    alice, _, collab, tables = pair
    mid, table = collab.mid(alice), tables[alice.id]
    a = associate(alice, mid, table["id"], name="Customer Data-2024", description="our customers\nline two",
                  tags={"env": "test"})
    assert a["name"] == "customer data-2024"  # the model: "in lowercase"
    assert a["arn"] == f"arn:aws:cleanrooms:us-east-1:{alice.id}:configuredtableassociation/{mid}/{a['id']}"
    assert (a["configuredTableId"], a["configuredTableArn"]) == (table["id"], table["arn"])
    assert (a["membershipId"], a["membershipArn"]) == (mid, collab.memberships[alice.id]["arn"])
    assert (a["roleArn"], a["description"], a["analysisRuleTypes"]) == (ROLE, "our customers\nline two", [])
    assert a["createTime"] == a["updateTime"]
    assert get_association(alice, mid, a["id"]) == a
    assert summaries(alice, mid) == [{k: a[k] for k in ("configuredTableId", "membershipId", "membershipArn", "name",
                                                        "createTime", "updateTime", "id", "arn",
                                                        "analysisRuleTypes")}]
    with server.db.read() as conn:
        assert tag_store.get(conn, a["arn"]) == {"env": "test"}

    time.sleep(0.01)
    updated = alice.client.update_configured_table_association(
        membershipIdentifier=mid, configuredTableAssociationIdentifier=a["id"], description="renamed",
        roleArn=ROLE_2)["configuredTableAssociation"]
    assert (updated["description"], updated["roleArn"], updated["name"]) == ("renamed", ROLE_2, a["name"])
    assert updated["createTime"] == a["createTime"] and updated["updateTime"] > a["updateTime"]
    assert get_association(alice, mid, a["id"]) == updated
    [summary] = summaries(alice, mid)
    assert summary["updateTime"] == updated["updateTime"]
    time.sleep(0.01)
    touched = alice.client.update_configured_table_association(
        membershipIdentifier=mid, configuredTableAssociationIdentifier=a["id"])["configuredTableAssociation"]
    assert touched["updateTime"] > updated["updateTime"]
    assert {k: v for k, v in touched.items() if k != "updateTime"} == {k: v for k, v in updated.items()
                                                                      if k != "updateTime"}

    response = alice.client.delete_configured_table_association(membershipIdentifier=mid,
                                                                configuredTableAssociationIdentifier=a["id"])
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 204
    response = raises("ResourceNotFoundException", get_association, alice, mid, a["id"])
    assert (response["resourceId"], response["resourceType"]) == (a["id"], "CONFIGURED_TABLE_ASSOCIATION")
    raises("ResourceNotFoundException", alice.client.delete_configured_table_association, membershipIdentifier=mid,
           configuredTableAssociationIdentifier=a["id"])
    assert summaries(alice, mid) == []
    with server.db.read() as conn:
        assert tag_store.get(conn, a["arn"]) == {}
    again = associate(alice, mid, table["id"], name="Customer Data-2024")  # name and table are free again
    assert again["id"] != a["id"] and "description" not in again


def test_names_are_unique_in_the_collaboration_across_members(account, pair):
    alice, bob, collab, tables = pair
    a = associate(alice, collab.mid(alice), tables[alice.id]["id"], name="customers")
    for name in ("customers", "CUSTOMERS"):
        response = raises("ConflictException", associate, bob, collab.mid(bob), tables[bob.id]["id"], name=name)
        assert (response["reason"], response["resourceType"]) == ("ALREADY_EXISTS", "CONFIGURED_TABLE_ASSOCIATION")
    assert summaries(bob, collab.mid(bob)) == []
    b = associate(bob, collab.mid(bob), tables[bob.id]["id"], name="customers_b")
    elsewhere = collaborate(bob, account())  # the same name in another collaboration is another relation
    assert associate(bob, elsewhere.mid(bob), tables[bob.id]["id"], name="customers")["name"] == "customers"
    alice.client.delete_configured_table_association(membershipIdentifier=collab.mid(alice),
                                                     configuredTableAssociationIdentifier=a["id"])
    bob.client.delete_configured_table_association(membershipIdentifier=collab.mid(bob),
                                                   configuredTableAssociationIdentifier=b["id"])
    assert associate(bob, collab.mid(bob), tables[bob.id]["id"], name="Customers")["name"] == "customers"


def test_a_configured_table_is_associated_once_per_collaboration(account, pair):
    alice, _, collab, tables = pair
    table_id = tables[alice.id]["id"]
    associate(alice, collab.mid(alice), table_id, name="first")
    response = raises("ConflictException", associate, alice, collab.mid(alice), table_id, name="second")
    assert (response["reason"], response["resourceType"], response["resourceId"]) == (
        "ALREADY_EXISTS", "CONFIGURED_TABLE", table_id)
    assert [s["name"] for s in summaries(alice, collab.mid(alice))] == ["first"]
    other = collaborate(alice, account())
    assert associate(alice, other.mid(alice), table_id, name="first")["configuredTableId"] == table_id
    second_table = create_table(alice, name="customers again")  # another configured table over the same data
    assert associate(alice, collab.mid(alice), second_table["id"], name="second")["name"] == "second"


def test_only_the_callers_own_configured_tables_can_be_associated(pair):
    alice, bob, collab, tables = pair
    answers = []
    for table_id in (tables[alice.id]["id"], UNKNOWN_ID):  # Alice's table, like an unknown id, does not exist
        response = raises("ResourceNotFoundException", associate, bob, collab.mid(bob), table_id)
        assert (response["resourceId"], response["resourceType"]) == (table_id, "CONFIGURED_TABLE")
        answers.append(response["Error"]["Message"].replace(table_id, "X"))
    assert answers[0] == answers[1]
    assert summaries(bob, collab.mid(bob)) == []


def test_association_inputs_are_validated(pair):
    alice, _, collab, tables = pair
    for extra, field in (({"name": "bad/name"}, "name"), ({"roleArn": "arn:aws:iam::1:user/x" + "x" * 20}, "roleArn"),
                         ({"description": "x" * 256}, "description")):
        response = raises("ValidationException", associate, alice, collab.mid(alice), tables[alice.id]["id"],
                          **extra)
        assert field_names(response) == [field], extra
    for tags in ({"aws:reserved": "v"}, {f"k{i}": "v" for i in range(51)}):
        raises("ValidationException", associate, alice, collab.mid(alice), tables[alice.id]["id"], tags=tags)
    assert summaries(alice, collab.mid(alice)) == []


def test_associations_need_an_active_membership_but_can_always_be_cleaned_up(account, pair):
    alice, bob, collab, tables = pair
    carol = account()
    carol_collab = collaborate(alice, carol)
    carol_table = create_table(carol)
    a = associate(bob, collab.mid(bob), tables[bob.id]["id"])
    c = associate(carol, carol_collab.mid(carol), carol_table["id"])
    table_rule(carol, carol_table["id"], "LIST")
    collaboration_rule(carol, carol_collab.mid(carol), c["id"], allowedResultReceivers=[])
    c = get_association(carol, carol_collab.mid(carol), c["id"])
    alice.client.delete_member(collaborationIdentifier=collab.id, accountId=bob.id)  # Bob's membership: REMOVED
    alice.client.delete_collaboration(collaborationIdentifier=carol_collab.id)  # Carol's: COLLABORATION_DELETED
    for p, mid, assoc, status in ((bob, collab.mid(bob), a, "REMOVED"),
                                  (carol, carol_collab.mid(carol), c, "COLLABORATION_DELETED")):
        other_table = create_table(p, name="another")
        response = raises("ConflictException", associate, p, mid, other_table["id"], name="another")
        assert (response["reason"], response["resourceType"], response["resourceId"]) == (
            "INVALID_STATE", "MEMBERSHIP", mid)
        assert status in response["Error"]["Message"]
        raises("ConflictException", p.client.update_configured_table_association, membershipIdentifier=mid,
               configuredTableAssociationIdentifier=assoc["id"], description="x")
        raises("ConflictException", collaboration_rule, p, mid, assoc["id"])
        assert get_association(p, mid, assoc["id"]) == assoc
        assert [s["id"] for s in summaries(p, mid)] == [assoc["id"]]
        raises("ConflictException", p.client.delete_membership, membershipIdentifier=mid)
    raises("ConflictException", carol.client.update_configured_table_association_analysis_rule,
           membershipIdentifier=carol_collab.mid(carol), configuredTableAssociationIdentifier=c["id"],
           analysisRuleType="LIST", analysisRulePolicy={"v1": {"list": {}}})
    carol.client.delete_configured_table_association_analysis_rule(
        membershipIdentifier=carol_collab.mid(carol), configuredTableAssociationIdentifier=c["id"],
        analysisRuleType="LIST")
    for p, mid, assoc in ((bob, collab.mid(bob), a), (carol, carol_collab.mid(carol), c)):
        p.client.delete_configured_table_association(membershipIdentifier=mid,
                                                     configuredTableAssociationIdentifier=assoc["id"])
        p.client.delete_membership(membershipIdentifier=mid)  # nothing left under it now
        raises("ResourceNotFoundException", p.client.get_membership, membershipIdentifier=mid)


def test_what_is_still_associated_cannot_be_deleted(pair):
    alice, bob, collab, tables = pair
    mid, table_id = collab.mid(bob), tables[bob.id]["id"]
    a = associate(bob, mid, table_id)
    collaboration_rule(bob, mid, a["id"], allowedResultReceivers=[bob.id])
    bob.client.delete_configured_table_association(membershipIdentifier=mid,
                                                   configuredTableAssociationIdentifier=a["id"])
    b = associate(bob, mid, table_id)  # and once more, with a rule kept
    collaboration_rule(bob, mid, b["id"], allowedResultReceivers=[bob.id])

    response = raises("ConflictException", bob.client.delete_membership, membershipIdentifier=mid)
    assert (response["reason"], response["resourceType"], response["resourceId"]) == (
        "SUBRESOURCES_EXIST", "MEMBERSHIP", mid)
    assert "1 configured table association" in response["Error"]["Message"]
    response = raises("ConflictException", bob.client.delete_configured_table, configuredTableIdentifier=table_id)
    assert (response["reason"], response["resourceType"], response["resourceId"]) == (
        "SUBRESOURCES_EXIST", "CONFIGURED_TABLE", table_id)
    response = raises("ConflictException", bob.client.delete_configured_table_analysis_rule,
                      configuredTableIdentifier=table_id, analysisRuleType="LIST")
    assert (response["reason"], response["resourceType"]) == ("SUBRESOURCES_EXIST", "CONFIGURED_TABLE")
    assert "collaboration analysis rule" in response["Error"]["Message"]
    assert bob.client.get_membership(membershipIdentifier=mid)["membership"]["status"] == "ACTIVE"
    assert bob.client.get_configured_table(configuredTableIdentifier=table_id)["configuredTable"][
        "analysisRuleTypes"] == ["LIST"]

    bob.client.delete_configured_table_association_analysis_rule(
        membershipIdentifier=mid, configuredTableAssociationIdentifier=b["id"], analysisRuleType="LIST")
    bob.client.delete_configured_table_analysis_rule(configuredTableIdentifier=table_id, analysisRuleType="LIST")
    raises("ConflictException", bob.client.delete_configured_table, configuredTableIdentifier=table_id)
    bob.client.delete_configured_table_association(membershipIdentifier=mid,
                                                   configuredTableAssociationIdentifier=b["id"])
    bob.client.delete_configured_table(configuredTableIdentifier=table_id)
    bob.client.delete_membership(membershipIdentifier=mid)
    members = alice.client.list_members(collaborationIdentifier=collab.id)["memberSummaries"]
    assert {m["accountId"]: m["status"] for m in members}[bob.id] == "LEFT"


def test_list_pages_newest_first_and_tokens_are_bound_to_the_membership(account, pair):
    alice, bob, collab, _ = pair
    mid = collab.mid(alice)
    created = [associate(alice, mid, create_table(alice, name=f"t{i}", columns=["user_id"])["id"], name=f"t{i}")
               for i in range(7)]
    pages, tokens = [], [None]
    while True:
        page = alice.client.list_configured_table_associations(
            membershipIdentifier=mid, maxResults=3, **({"nextToken": tokens[-1]} if tokens[-1] else {}))
        pages.append([s["id"] for s in page["configuredTableAssociationSummaries"]])
        if not page.get("nextToken"):
            break
        tokens.append(page["nextToken"])
    first_token = tokens[1]
    assert [len(p) for p in pages] == [3, 3, 1]
    assert sum(pages, []) == [a["id"] for a in reversed(created)]
    other = collaborate(alice, account())
    response = raises("ValidationException", alice.client.list_configured_table_associations,
                      membershipIdentifier=other.mid(alice), nextToken=first_token)
    assert field_names(response) == ["nextToken"]
    raises("ValidationException", alice.client.list_configured_tables, nextToken=first_token)
    raises("ValidationException", bob.client.list_configured_table_associations, membershipIdentifier=mid,
           nextToken=first_token)  # someone else's token, as for every list
    raises("ResourceNotFoundException", bob.client.list_configured_table_associations, membershipIdentifier=mid)
    assert summaries(bob, collab.mid(bob)) == []


# ------------------------------------------------------------------------------------------------ collaboration rules


@pytest.mark.parametrize("rule_type", ["LIST", "AGGREGATION", "CUSTOM"])
def test_collaboration_analysis_rule_lifecycle(account, rule_type):
    alice, bob = account(), account()
    collab = collaborate(alice, bob)
    table = create_table(alice)
    table_rule(alice, table["id"], rule_type)
    mid = collab.mid(alice)
    a = associate(alice, mid, table["id"])
    body = {"allowedResultReceivers": [bob.id]}
    if rule_type != "AGGREGATION":
        body["allowedAdditionalAnalyses"] = [
            f"arn:aws:cleanrooms:us-east-1:{bob.id}:membership/{collab.mid(bob)}/configuredaudiencemodelassociation/*"]
    rule = collaboration_rule(alice, mid, a["id"], rule_type, **body)
    member = {"LIST": "list", "AGGREGATION": "aggregation", "CUSTOM": "custom"}[rule_type]
    assert rule == {"membershipIdentifier": mid, "configuredTableAssociationId": a["id"],
                    "configuredTableAssociationArn": a["arn"], "policy": {"v1": {member: body}}, "type": rule_type,
                    "createTime": rule["createTime"], "updateTime": rule["createTime"]}
    after = get_association(alice, mid, a["id"])
    assert after["analysisRuleTypes"] == [rule_type] and after["updateTime"] == a["updateTime"]
    assert summaries(alice, mid)[0]["analysisRuleTypes"] == [rule_type]
    params = {"membershipIdentifier": mid, "configuredTableAssociationIdentifier": a["id"]}
    assert alice.client.get_configured_table_association_analysis_rule(
        analysisRuleType=rule_type, **params)["analysisRule"] == rule

    response = raises("ConflictException", collaboration_rule, alice, mid, a["id"], rule_type)
    assert (response["reason"], response["resourceType"], response["resourceId"]) == (
        "ALREADY_EXISTS", "CONFIGURED_TABLE_ASSOCIATION", a["id"])
    for other in {"LIST", "AGGREGATION", "CUSTOM"} - {rule_type}:
        om = {"LIST": "list", "AGGREGATION": "aggregation", "CUSTOM": "custom"}[other]
        for call, extra in ((alice.client.get_configured_table_association_analysis_rule, {}),
                            (alice.client.update_configured_table_association_analysis_rule,
                             {"analysisRulePolicy": {"v1": {om: {}}}}),
                            (alice.client.delete_configured_table_association_analysis_rule, {})):
            response = raises("ResourceNotFoundException", call, analysisRuleType=other, **params, **extra)
            assert (response["resourceId"], response["resourceType"]) == (a["id"], "CONFIGURED_TABLE_ASSOCIATION")

    time.sleep(0.01)
    replacement = {"v1": {member: {"allowedResultReceivers": []}}}
    updated = alice.client.update_configured_table_association_analysis_rule(
        analysisRuleType=rule_type, analysisRulePolicy=replacement, **params)["analysisRule"]
    assert updated["policy"] == replacement and updated["createTime"] == rule["createTime"]
    assert updated["updateTime"] > rule["updateTime"]
    assert alice.client.get_configured_table_association_analysis_rule(
        analysisRuleType=rule_type, **params)["analysisRule"] == updated

    response = alice.client.delete_configured_table_association_analysis_rule(analysisRuleType=rule_type, **params)
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 204
    raises("ResourceNotFoundException", alice.client.get_configured_table_association_analysis_rule,
           analysisRuleType=rule_type, **params)
    assert get_association(alice, mid, a["id"])["analysisRuleTypes"] == []
    assert summaries(alice, mid)[0]["analysisRuleTypes"] == []
    assert collaboration_rule(alice, mid, a["id"], rule_type)["policy"] == {"v1": {member: {}}}


def test_collaboration_analysis_rule_validation(account):
    alice, bob, contributor, invitee, stranger = (account() for _ in range(5))
    collab = collaborate(alice, bob, invited=[invitee])
    alice.client.create_collaboration_change_request(collaborationIdentifier=collab.id, changes=[{
        "specificationType": "MEMBER",
        "specification": {"member": {"accountId": contributor.id, "memberAbilities": [],
                                     "displayName": "contributor"}}}])
    mid = collab.mid(alice)
    bare, listed, aggregated = (create_table(alice, name=n) for n in ("bare", "listed", "aggregated"))
    table_rule(alice, listed["id"], "LIST")
    table_rule(alice, aggregated["id"], "AGGREGATION")
    a_bare, a_list, a_agg = (associate(alice, mid, t["id"], name=t["name"]) for t in (bare, listed, aggregated))

    def refused(association, rule_type, body, field, reason="INVALID_CONFIGURATION", policy=None):
        member = {"LIST": "list", "AGGREGATION": "aggregation", "CUSTOM": "custom"}[rule_type]
        response = raises("ValidationException", alice.client.create_configured_table_association_analysis_rule,
                          membershipIdentifier=mid, configuredTableAssociationIdentifier=association["id"],
                          analysisRuleType=rule_type, analysisRulePolicy=policy or {"v1": {member: body}})
        assert (response["reason"], field_names(response)) == (reason, [field]), response
        return response["Error"]["Message"]

    path = "analysisRulePolicy.v1."
    # the policy must be the one the type names, checked before anything is looked up
    refused(a_list, "LIST", None, "analysisRulePolicy.v1", "FIELD_VALIDATION_FAILED",
            policy={"v1": {"custom": {}}})
    # the type must be the configured table's rule type
    assert "has no analysis rule" in refused(a_bare, "LIST", {}, "analysisRuleType")
    assert "has a LIST analysis rule" in refused(a_list, "CUSTOM", {}, "analysisRuleType")
    # result receivers: members of the collaboration who can receive results (invited ones count)
    message = refused(a_list, "LIST", {"allowedResultReceivers": [bob.id, stranger.id, alice.id, contributor.id]},
                      path + "list.allowedResultReceivers")
    assert f"{stranger.id}, {alice.id}, {contributor.id}" in message and bob.id not in message
    refused(a_list, "LIST", {"allowedResultReceivers": [bob.id, bob.id]}, path + "list.allowedResultReceivers",
            "FIELD_VALIDATION_FAILED")
    # additional analyses: not for AGGREGATION; only this collaboration's resources (or wildcards)
    ours = (f"arn:aws:cleanrooms:us-east-1:{alice.id}:membership/{mid}/configuredaudiencemodelassociation/"
            "11111111-2222-3333-4444-555555555555")
    foreign = ours.replace(mid, UNKNOWN_ID)
    ml = (f"arn:aws:cleanrooms-ml:us-east-1:{bob.id}:membership/{collab.mid(bob)}/"
          "configured-model-algorithm-association/a")
    refused(a_agg, "AGGREGATION", {"allowedAdditionalAnalyses": [ours]}, path + "aggregation.allowedAdditionalAnalyses")
    assert foreign in refused(a_list, "LIST", {"allowedAdditionalAnalyses": [ours, foreign]},
                              path + "list.allowedAdditionalAnalyses")
    refused(a_list, "LIST", {"allowedAdditionalAnalyses": [ours, ours]}, path + "list.allowedAdditionalAnalyses",
            "FIELD_VALIDATION_FAILED")
    refused(a_list, "LIST", {"allowedAdditionalAnalyses": ["arn:aws:s3:::bucket"]},
            path + "list.allowedAdditionalAnalyses.1.member", "FIELD_VALIDATION_FAILED")  # the model's pattern
    for association in (a_bare, a_list, a_agg):
        assert get_association(alice, mid, association["id"])["analysisRuleTypes"] == []

    wildcard = "arn:aws:cleanrooms:us-east-1:*:membership/*/configuredaudiencemodelassociation/*"
    accepted = {"allowedResultReceivers": [bob.id, invitee.id], "allowedAdditionalAnalyses": [ours, wildcard, ml]}
    assert collaboration_rule(alice, mid, a_list["id"], **accepted)["policy"] == {"v1": {"list": accepted}}
    assert collaboration_rule(alice, mid, a_agg["id"], "AGGREGATION", allowedAdditionalAnalyses=[])["type"] == \
        "AGGREGATION"
    # an update is checked the same way and leaves the rule as it was when refused
    response = raises("ValidationException", alice.client.update_configured_table_association_analysis_rule,
                      membershipIdentifier=mid, configuredTableAssociationIdentifier=a_list["id"],
                      analysisRuleType="LIST", analysisRulePolicy={"v1": {"list": {
                          "allowedResultReceivers": [stranger.id]}}})
    assert field_names(response) == [path + "list.allowedResultReceivers"]
    assert alice.client.get_configured_table_association_analysis_rule(
        membershipIdentifier=mid, configuredTableAssociationIdentifier=a_list["id"],
        analysisRuleType="LIST")["analysisRule"]["policy"] == {"v1": {"list": accepted}}


# ------------------------------------------------------------------------------------------------ other accounts


def _association_calls(client, mid, association_id, table_id):
    """Every association operation, as (name, call, params) aimed at one membership and association."""
    ids = {"membershipIdentifier": mid, "configuredTableAssociationIdentifier": association_id}
    return [
        ("CreateConfiguredTableAssociation", client.create_configured_table_association,
         {"membershipIdentifier": mid, "configuredTableIdentifier": table_id, "name": "stolen", "roleArn": ROLE}),
        ("GetConfiguredTableAssociation", client.get_configured_table_association, ids),
        ("UpdateConfiguredTableAssociation", client.update_configured_table_association,
         {**ids, "description": "stolen"}),
        ("DeleteConfiguredTableAssociation", client.delete_configured_table_association, ids),
        ("ListConfiguredTableAssociations", client.list_configured_table_associations,
         {"membershipIdentifier": mid}),
        ("CreateConfiguredTableAssociationAnalysisRule", client.create_configured_table_association_analysis_rule,
         {**ids, "analysisRuleType": "LIST", "analysisRulePolicy": {"v1": {"list": {}}}}),
        ("GetConfiguredTableAssociationAnalysisRule", client.get_configured_table_association_analysis_rule,
         {**ids, "analysisRuleType": "LIST"}),
        ("UpdateConfiguredTableAssociationAnalysisRule", client.update_configured_table_association_analysis_rule,
         {**ids, "analysisRuleType": "LIST", "analysisRulePolicy": {"v1": {"list": {}}}}),
        ("DeleteConfiguredTableAssociationAnalysisRule", client.delete_configured_table_association_analysis_rule,
         {**ids, "analysisRuleType": "LIST"}),
    ]


def _owner_view(p, mid, association_id) -> dict:
    params = {"membershipIdentifier": mid, "configuredTableAssociationIdentifier": association_id}
    return {"association": get_association(p, mid, association_id), "list": summaries(p, mid),
            "rule": p.client.get_configured_table_association_analysis_rule(analysisRuleType="LIST",
                                                                            **params)["analysisRule"]}


def test_other_accounts_reach_no_association(server, account):
    alice, bob, invitee, outsider, stranger = (account() for _ in range(5))
    collab = collaborate(alice, bob, invited=[invitee])
    other = collaborate(outsider, account())  # the outsider is active in another collaboration
    mid = collab.mid(alice)
    table = create_table(alice)
    table_rule(alice, table["id"], "LIST")
    a = associate(alice, mid, table["id"], tags={"k": "v"})
    collaboration_rule(alice, mid, a["id"], allowedResultReceivers=[bob.id])
    before = _owner_view(alice, mid, a["id"])

    attackers = {"member": (bob, collab.mid(bob)), "invitee": (invitee, None), "other": (outsider, other.mid(outsider)),
                 "stranger": (stranger, None)}
    for role, (p, own_mid) in attackers.items():
        own_table = create_table(p, name="own")  # the caller's own table does not make Alice's membership its own
        for table_id in (table["id"], own_table["id"]):
            for (name, call, params), (_, unknown_call, unknown_params) in zip(
                    _association_calls(p.client, mid, a["id"], table_id),
                    _association_calls(p.client, UNKNOWN_ID, a["id"], table_id)):
                foreign = raises("ResourceNotFoundException", call, **params)
                unknown = raises("ResourceNotFoundException", unknown_call, **unknown_params)
                assert (foreign["resourceType"], foreign["resourceId"]) == ("MEMBERSHIP", mid), (role, name)
                assert foreign["Error"]["Message"].replace(mid, "X") == \
                    unknown["Error"]["Message"].replace(UNKNOWN_ID, "X"), (role, name)
        if own_mid:  # Alice's association id under the attacker's own membership does not exist there either
            for name, call, params in _association_calls(p.client, own_mid, a["id"], own_table["id"])[1:4]:
                response = raises("ResourceNotFoundException", call, **params)
                assert (response["resourceType"], response["resourceId"]) == (
                    "CONFIGURED_TABLE_ASSOCIATION", a["id"]), (role, name)
            # nor can Alice's configured table be associated through the attacker's own membership
            response = raises("ResourceNotFoundException", associate, p, own_mid, table["id"], name="stolen")
            assert response["resourceType"] == "CONFIGURED_TABLE"
            assert summaries(p, own_mid) == []
        for call, extra in ((p.client.list_tags_for_resource, {}), (p.client.tag_resource, {"tags": {"x": "y"}}),
                            (p.client.untag_resource, {"tagKeys": ["k"]})):
            raises("ValidationException", call, resourceArn=a["arn"], **extra)  # see test_tags_on_associations
    assert _owner_view(alice, mid, a["id"]) == before
    with server.db.read() as conn:
        assert tag_store.get(conn, a["arn"]) == {"k": "v"}


# ------------------------------------------------------------------------------------------------ tags


def _ctx(server, p, operation: str) -> RequestContext:
    return RequestContext(request_id="r", account_id=p.id, region="us-east-1", operation=operation, now=time.time(),
                          db=server.db, tokens=PageTokens(b"k" * 32), quotas=Quotas())


def test_tags_on_associations(server, pair):
    """Association ARNs are longer than the 100 characters the model allows TagResource, UntagResource and
    ListTagsForResource, so the server refuses them as input (ValidationException). Behind that check the tag
    operations resolve association ARNs for their owner only; that part is exercised in process."""
    load_all()  # as the server does: every family registers its tag resolver
    alice, bob, collab, tables = pair
    mid = collab.mid(alice)
    a = associate(alice, mid, tables[alice.id]["id"], tags={"env": "dev"})
    response = raises("ValidationException", alice.client.list_tags_for_resource, resourceArn=a["arn"])
    assert field_names(response) == ["resourceArn"] and len(a["arn"]) > 100

    def call(p, operation, **params):
        handler = {"TagResource": tag_service.tag_resource, "UntagResource": tag_service.untag_resource,
                   "ListTagsForResource": tag_service.list_tags_for_resource}[operation]
        return handler(_ctx(server, p, operation), {"resourceArn": a["arn"], **params})

    assert call(alice, "ListTagsForResource") == {"tags": {"env": "dev"}}
    call(alice, "TagResource", tags={"team": "x", "env": "prod"})
    call(alice, "UntagResource", tagKeys=["team"])
    assert call(alice, "ListTagsForResource") == {"tags": {"env": "prod"}}
    for arn in (a["arn"], a["arn"].replace(a["id"], UNKNOWN_ID), a["arn"].replace(mid, collab.mid(bob))):
        for p in (bob, alice) if arn != a["arn"] else (bob,):
            with pytest.raises(ServiceError) as info:
                tag_service.list_tags_for_resource(_ctx(server, p, "ListTagsForResource"), {"resourceArn": arn})
            assert (info.value.code, info.value.fields["resourceType"]) == (
                "ResourceNotFoundException", "CONFIGURED_TABLE_ASSOCIATION")
    alice.client.delete_configured_table_association(membershipIdentifier=mid,
                                                     configuredTableAssociationIdentifier=a["id"])
    with pytest.raises(ServiceError):
        call(alice, "ListTagsForResource")
    with server.db.read() as conn:
        assert tag_store.get(conn, a["arn"]) == {}
        assert association_store.get(conn, mid, a["id"]) is None
