"""Privacy budget templates and privacy budgets over HTTP, with several accounts: both template types through their
lifecycle, who may create, change and read them, validation, pages, the schema status they clear, the budgets
ListPrivacyBudgets shows before and after spends (made through the spend API the protected query service calls),
and PreviewPrivacyImpact agreeing with the cost model. Responses are checked against the model."""

from __future__ import annotations

import re
import time

import pytest

from opencleanrooms.privacy import costs
from opencleanrooms.privacy.costs import BudgetExhausted
from opencleanrooms.services import privacy_budgets as service
from tests.e2e.test_table_associations import (  # noqa: F401  (`account` is a fixture)
    UNKNOWN_ID,
    account,
    associate,
    collaborate,
    collaboration_rule,
    create_table,
    custom_policy,
    table_rule,
)
from tests.support.builders import all_pages, raises

DP = {"differentialPrivacy": {"epsilon": 3, "usersNoisePerQuery": 30}}
TEMPLATE_ARN = re.compile(r"^arn:aws:cleanrooms:us-east-1:\d{12}:privacybudgettemplate/[0-9a-f-]{36}$")


class Setup:
    """Alice can query; Bob owns a table with differential privacy; Carol is a plain member; Dave is invited and
    never joins; Eve is in another collaboration with Alice; Stranger is in none."""

    def __init__(self, account, server, extra: int = 0) -> None:
        self.alice, self.bob, self.carol, self.dave, self.eve, self.stranger = (account() for _ in range(6))
        self.extras = [account() for _ in range(extra)]  # more joined members, for tests that need them
        self.collab = collaborate(self.alice, self.bob, self.carol, *self.extras, invited=[self.dave],
                                  creator_abilities=("CAN_QUERY", "CAN_RECEIVE_RESULTS"))
        self.other = collaborate(self.eve, self.alice)
        self.bob_mid = self.collab.mid(self.bob)
        self.bob_unchecked = server.client(self.bob.account, parameter_validation=False)  # for server-side checks
        table = create_table(self.bob)
        table_rule(self.bob, table["id"], "CUSTOM", custom_policy(
            allowedAnalysisProviders=[self.alice.id], differentialPrivacy={"columns": [{"name": "user_id"}]}))
        self.association = associate(self.bob, self.bob_mid, table["id"])
        collaboration_rule(self.bob, self.bob_mid, self.association["id"], "CUSTOM",
                           allowedResultReceivers=[self.alice.id])
        self.budgeted_arn = (f"arn:aws:cleanrooms:us-east-1:{self.bob.id}:membership/{self.bob_mid}/"
                             f"configuredtableassociation/{self.association['id']}")

    def dp_template(self, **extra) -> dict:
        return self.bob.client.create_privacy_budget_template(
            membershipIdentifier=self.bob_mid, privacyBudgetType="DIFFERENTIAL_PRIVACY", parameters=DP,
            **extra)["privacyBudgetTemplate"]

    def access_template(self, parameters=None, **extra) -> dict:
        parameters = parameters or [{"type": "CALENDAR_DAY", "budget": 2, "autoRefresh": "ENABLED"},
                                    {"type": "LIFETIME", "budget": 3}]
        return self.bob.client.create_privacy_budget_template(
            membershipIdentifier=self.bob_mid, privacyBudgetType="ACCESS_BUDGET",
            parameters={"accessBudget": {"budgetParameters": parameters, "resourceArn": self.budgeted_arn}},
            **extra)["privacyBudgetTemplate"]


@pytest.fixture
def setup(account, server):
    return Setup(account, server)


def budgets(p, membership_id, budget_type="DIFFERENTIAL_PRIVACY", **extra) -> list[dict]:
    return all_pages(p.client, "list_privacy_budgets", "privacyBudgetSummaries", membershipIdentifier=membership_id,
                     privacyBudgetType=budget_type, **extra)


def remaining(summary) -> dict:
    return {a["type"]: a["remainingCount"] for a in summary["budget"]["differentialPrivacy"]["aggregations"]}


def test_differential_privacy_template_lifecycle(setup):
    s = setup
    created = s.dp_template(autoRefresh="CALENDAR_MONTH", tags={"team": "privacy"})
    assert TEMPLATE_ARN.match(created["arn"]) and created["arn"].endswith(created["id"])
    assert created["membershipId"] == s.bob_mid and created["collaborationId"] == s.collab.id
    assert created["privacyBudgetType"] == "DIFFERENTIAL_PRIVACY" and created["autoRefresh"] == "CALENDAR_MONTH"
    assert created["parameters"] == DP
    assert s.bob.client.list_tags_for_resource(resourceArn=created["arn"])["tags"] == {"team": "privacy"}
    got = s.bob.client.get_privacy_budget_template(membershipIdentifier=s.bob_mid,
                                                   privacyBudgetTemplateIdentifier=created["id"])
    assert got["privacyBudgetTemplate"] == created

    updated = s.bob.client.update_privacy_budget_template(
        membershipIdentifier=s.bob_mid, privacyBudgetTemplateIdentifier=created["id"],
        privacyBudgetType="DIFFERENTIAL_PRIVACY",
        parameters={"differentialPrivacy": {"usersNoisePerQuery": 50}})["privacyBudgetTemplate"]
    assert updated["parameters"] == {"differentialPrivacy": {"epsilon": 3, "usersNoisePerQuery": 50}}
    assert updated["updateTime"] >= created["updateTime"] and updated["createTime"] == created["createTime"]
    raises("ValidationException", s.bob.client.update_privacy_budget_template, membershipIdentifier=s.bob_mid,
           privacyBudgetTemplateIdentifier=created["id"], privacyBudgetType="ACCESS_BUDGET")

    collaboration_view = s.carol.client.get_collaboration_privacy_budget_template(
        collaborationIdentifier=s.collab.id, privacyBudgetTemplateIdentifier=created["id"])
    view = collaboration_view["collaborationPrivacyBudgetTemplate"]
    assert view["creatorAccountId"] == s.bob.id and view["parameters"] == updated["parameters"]
    assert "membershipId" not in view

    s.bob.client.delete_privacy_budget_template(membershipIdentifier=s.bob_mid,
                                                privacyBudgetTemplateIdentifier=created["id"])
    raises("ResourceNotFoundException", s.bob.client.get_privacy_budget_template, membershipIdentifier=s.bob_mid,
           privacyBudgetTemplateIdentifier=created["id"])
    assert budgets(s.bob, s.bob_mid) == []
    s.dp_template()  # the collaboration may have one again


def test_one_differential_privacy_template_per_collaboration_and_only_its_data_owner(setup):
    s = setup
    s.dp_template()
    error = raises("ConflictException", s.dp_template)
    assert error["reason"] == "ALREADY_EXISTS" and error["resourceId"] == s.collab.id
    # Alice has no table with differential privacy: she cannot set the policy
    raises("AccessDeniedException", s.alice.client.create_privacy_budget_template,
           membershipIdentifier=s.collab.mid(s.alice), privacyBudgetType="DIFFERENTIAL_PRIVACY", parameters=DP)
    raises("ResourceNotFoundException", s.alice.client.create_privacy_budget_template,
           membershipIdentifier=s.bob_mid, privacyBudgetType="DIFFERENTIAL_PRIVACY", parameters=DP)


def test_who_reads_and_who_changes(setup):
    s = setup
    created = s.dp_template()
    ref = {"privacyBudgetTemplateIdentifier": created["id"]}
    alice_mid, carol_mid = s.collab.mid(s.alice), s.collab.mid(s.carol)
    # every ACTIVE member reads the collaboration's templates and budgets through its own membership
    for p, mid in ((s.alice, alice_mid), (s.carol, carol_mid), (s.bob, s.bob_mid)):
        assert p.client.get_privacy_budget_template(membershipIdentifier=mid, **ref)["privacyBudgetTemplate"][
            "id"] == created["id"]
        assert [t["id"] for t in all_pages(p.client, "list_privacy_budget_templates",
                                           "privacyBudgetTemplateSummaries", membershipIdentifier=mid)] == [
            created["id"]]
        assert len(budgets(p, mid)) == 1
    # ... but only its creator changes or deletes it
    raises("AccessDeniedException", s.alice.client.update_privacy_budget_template, membershipIdentifier=alice_mid,
           privacyBudgetType="DIFFERENTIAL_PRIVACY", parameters={"differentialPrivacy": {"epsilon": 20}}, **ref)
    raises("AccessDeniedException", s.carol.client.delete_privacy_budget_template, membershipIdentifier=carol_mid,
           **ref)
    # someone else's membership is not found, whoever owns it
    for p in (s.alice, s.stranger, s.eve):
        raises("ResourceNotFoundException", p.client.get_privacy_budget_template, membershipIdentifier=s.bob_mid,
               **ref)
        raises("ResourceNotFoundException", p.client.list_privacy_budgets, membershipIdentifier=s.bob_mid,
               privacyBudgetType="DIFFERENTIAL_PRIVACY")
    # a membership of another collaboration does not see it
    raises("ResourceNotFoundException", s.alice.client.get_privacy_budget_template,
           membershipIdentifier=s.other.mid(s.alice), **ref)
    assert budgets(s.alice, s.other.mid(s.alice)) == []
    # collaboration calls: INVITED and ACTIVE members; others are denied as for any collaboration call
    for p in (s.alice, s.bob, s.carol, s.dave):
        listed = all_pages(p.client, "list_collaboration_privacy_budget_templates",
                           "collaborationPrivacyBudgetTemplateSummaries", collaborationIdentifier=s.collab.id)
        assert [t["id"] for t in listed] == [created["id"]]
        assert listed[0]["creatorAccountId"] == s.bob.id
        assert len(all_pages(p.client, "list_collaboration_privacy_budgets", "collaborationPrivacyBudgetSummaries",
                             collaborationIdentifier=s.collab.id, privacyBudgetType="DIFFERENTIAL_PRIVACY")) == 1
    for p in (s.eve, s.stranger):
        raises("AccessDeniedException", p.client.get_collaboration_privacy_budget_template,
               collaborationIdentifier=s.collab.id, **ref)
        raises("AccessDeniedException", p.client.list_collaboration_privacy_budgets,
               collaborationIdentifier=s.collab.id, privacyBudgetType="DIFFERENTIAL_PRIVACY")
    raises("ResourceNotFoundException", s.alice.client.get_collaboration_privacy_budget_template,
           collaborationIdentifier=s.collab.id, privacyBudgetTemplateIdentifier=UNKNOWN_ID)
    raises("ResourceNotFoundException", s.bob.client.get_privacy_budget_template, membershipIdentifier=s.bob_mid,
           privacyBudgetTemplateIdentifier=UNKNOWN_ID)
    # tags: the creator's own resource only
    raises("ResourceNotFoundException", s.alice.client.list_tags_for_resource, resourceArn=created["arn"])
    s.bob.client.tag_resource(resourceArn=created["arn"], tags={"k": "v"})
    # a membership with templates cannot be deleted (Bob is not the creator, so he could otherwise leave)
    error = raises("ConflictException", s.bob.client.delete_membership, membershipIdentifier=s.bob_mid)
    assert error["reason"] == "SUBRESOURCES_EXIST" and "privacy budget template" in error["message"]


def test_a_member_that_is_no_longer_active_sees_only_its_own(setup):
    s = setup
    s.dp_template()
    carol_mid = s.collab.mid(s.carol)
    s.alice.client.delete_member(collaborationIdentifier=s.collab.id, accountId=s.carol.id)
    assert budgets(s.carol, carol_mid) == []
    assert all_pages(s.carol.client, "list_privacy_budget_templates", "privacyBudgetTemplateSummaries",
                     membershipIdentifier=carol_mid) == []
    raises("ConflictException", s.carol.client.create_privacy_budget_template, membershipIdentifier=carol_mid,
           privacyBudgetType="DIFFERENTIAL_PRIVACY", parameters=DP)


def test_schema_status_clears_once_the_policy_exists(setup):
    s = setup

    def reasons():
        schema = s.alice.client.get_schema(collaborationIdentifier=s.collab.id, name="customers")["schema"]
        [detail] = schema["schemaStatusDetails"]
        assert detail["configurations"] == ["DIFFERENTIAL_PRIVACY"]
        return [r["code"] for r in detail.get("reasons", [])], detail["status"]

    assert reasons() == (["DIFFERENTIAL_PRIVACY_POLICY_NOT_CONFIGURED"], "NOT_READY")
    created = s.dp_template()
    assert reasons() == ([], "READY")
    s.bob.client.delete_privacy_budget_template(membershipIdentifier=s.bob_mid,
                                                privacyBudgetTemplateIdentifier=created["id"])
    assert reasons() == (["DIFFERENTIAL_PRIVACY_POLICY_NOT_CONFIGURED"], "NOT_READY")
    s.access_template()  # an access budget is not a differential privacy policy
    assert reasons()[0] == ["DIFFERENTIAL_PRIVACY_POLICY_NOT_CONFIGURED"]


def test_access_budget_template_lifecycle_and_budgets(setup, server):
    s = setup
    created = s.access_template()
    assert created["privacyBudgetType"] == "ACCESS_BUDGET" and created["autoRefresh"] == "NONE"
    assert created["parameters"]["accessBudget"]["resourceArn"] == s.budgeted_arn
    error = raises("ConflictException", s.access_template)
    assert error["reason"] == "ALREADY_EXISTS" and error["resourceType"] == "CONFIGURED_TABLE_ASSOCIATION"

    [summary] = budgets(s.alice, s.collab.mid(s.alice), "ACCESS_BUDGET")
    access = summary["budget"]["accessBudget"]
    assert access["resourceArn"] == s.budgeted_arn and access["aggregateRemainingBudget"] == 2
    day, lifetime = access["details"]
    assert (day["budgetType"], day["budget"], day["remainingBudget"], day["autoRefresh"]) == (
        "CALENDAR_DAY", 2, 2, "ENABLED")
    assert (day["endTime"] - day["startTime"]).total_seconds() == 86400
    assert (lifetime["budgetType"], lifetime["remainingBudget"]) == ("LIFETIME", 3) and "endTime" not in lifetime
    assert summary["privacyBudgetTemplateId"] == created["id"] and summary["membershipId"] == s.bob_mid
    assert budgets(s.alice, s.collab.mid(s.alice), "ACCESS_BUDGET", accessBudgetResourceArn=s.budgeted_arn) == [
        summary]
    other_arn = s.budgeted_arn.replace(s.association["id"], UNKNOWN_ID)
    assert budgets(s.alice, s.collab.mid(s.alice), "ACCESS_BUDGET", accessBudgetResourceArn=other_arn) == []
    assert budgets(s.alice, s.collab.mid(s.alice), "DIFFERENTIAL_PRIVACY") == []

    # spends (what the protected query service does inside its write transaction), both ARN forms accepted
    for arn in (s.budgeted_arn, s.association["arn"]):
        with server.db.write() as conn:
            spent = service.spend(conn, s.collab.id, time.time(), {}, [arn])
        assert spent.access_budgets == (s.budgeted_arn,) and spent.epsilon == 0
    [summary] = budgets(s.carol, s.collab.mid(s.carol), "ACCESS_BUDGET")
    access = summary["budget"]["accessBudget"]
    assert [d["remainingBudget"] for d in access["details"]] == [0, 1] and access["aggregateRemainingBudget"] == 0
    with server.db.write() as conn, pytest.raises(BudgetExhausted) as caught:
        service.spend(conn, s.collab.id, time.time(), {}, [s.budgeted_arn])
    assert "CALENDAR_DAY" in caught.value.message

    # editing resets the balance (AWS) and replaces the parameters
    updated = s.bob.client.update_privacy_budget_template(
        membershipIdentifier=s.bob_mid, privacyBudgetTemplateIdentifier=created["id"],
        privacyBudgetType="ACCESS_BUDGET",
        parameters={"accessBudget": {"budgetParameters": [{"type": "LIFETIME", "budget": 1}]}})
    assert updated["privacyBudgetTemplate"]["parameters"]["accessBudget"] == {
        "budgetParameters": [{"type": "LIFETIME", "budget": 1}], "resourceArn": s.budgeted_arn}
    [summary] = budgets(s.bob, s.bob_mid, "ACCESS_BUDGET")
    assert summary["budget"]["accessBudget"]["aggregateRemainingBudget"] == 1


def test_access_budget_validation(setup):
    s = setup

    def create(parameters, resource_arn=None, **extra):
        return s.bob_unchecked.create_privacy_budget_template(
            membershipIdentifier=s.bob_mid, privacyBudgetType="ACCESS_BUDGET",
            parameters={"accessBudget": {"budgetParameters": parameters,
                                         "resourceArn": resource_arn or s.budgeted_arn}}, **extra)

    for bad in ([{"type": "CALENDAR_DAY", "budget": 1}, {"type": "CALENDAR_WEEK", "budget": 1}],
                [{"type": "LIFETIME", "budget": 1}, {"type": "LIFETIME", "budget": 2}],
                [{"type": "LIFETIME", "budget": 1, "autoRefresh": "ENABLED"}]):
        assert raises("ValidationException", create, bad)["reason"] == "INVALID_CONFIGURATION"
    raises("ValidationException", create, [{"type": "LIFETIME", "budget": 1}], autoRefresh="CALENDAR_MONTH")
    raises("ValidationException", create, [{"type": "LIFETIME", "budget": 1000001}])
    raises("ValidationException", create, [])
    # the association must be one of the membership's own
    alice_mid = s.collab.mid(s.alice)
    for arn in (s.budgeted_arn.replace(s.association["id"], UNKNOWN_ID),
                s.budgeted_arn.replace(s.bob_mid, alice_mid),
                s.budgeted_arn.replace("configuredtableassociation", "intermediatetable")):
        raises("ResourceNotFoundException", create, [{"type": "LIFETIME", "budget": 1}], arn)
    raises("ResourceNotFoundException", s.alice.client.create_privacy_budget_template,
           membershipIdentifier=alice_mid, privacyBudgetType="ACCESS_BUDGET",
           parameters={"accessBudget": {"budgetParameters": [{"type": "LIFETIME", "budget": 1}],
                                        "resourceArn": s.budgeted_arn}})
    # the type names the union member
    raises("ValidationException", s.bob.client.create_privacy_budget_template, membershipIdentifier=s.bob_mid,
           privacyBudgetType="ACCESS_BUDGET", parameters=DP)
    raises("ValidationException", s.bob.client.create_privacy_budget_template, membershipIdentifier=s.bob_mid,
           privacyBudgetType="DIFFERENTIAL_PRIVACY",
           parameters={"accessBudget": {"budgetParameters": [{"type": "LIFETIME", "budget": 1}],
                                        "resourceArn": s.budgeted_arn}})
    create([{"type": "CALENDAR_WEEK", "budget": 0, "autoRefresh": "DISABLED"}, {"type": "LIFETIME", "budget": 5}])


@pytest.mark.parametrize(("epsilon", "noise"), [(0, 30), (21, 30), (3, 9), (3, 101)])
def test_differential_privacy_parameter_ranges(setup, epsilon, noise):
    s = setup
    parameters = {"differentialPrivacy": {"epsilon": epsilon, "usersNoisePerQuery": noise}}
    raises("ValidationException", s.bob_unchecked.create_privacy_budget_template, membershipIdentifier=s.bob_mid,
           privacyBudgetType="DIFFERENTIAL_PRIVACY", parameters=parameters)
    raises("ValidationException", s.bob_unchecked.preview_privacy_impact, membershipIdentifier=s.bob_mid,
           parameters=parameters)


@pytest.mark.parametrize(("epsilon", "noise"), [(1, 10), (3, 30), (20, 100), (7, 13)])
def test_preview_matches_the_cost_model_and_the_budget(setup, epsilon, noise):
    s = setup
    preview = s.alice.client.preview_privacy_impact(
        membershipIdentifier=s.collab.mid(s.alice),
        parameters={"differentialPrivacy": {"epsilon": epsilon, "usersNoisePerQuery": noise}})
    counts = {a["type"]: a["maxCount"] for a in preview["privacyImpact"]["differentialPrivacy"]["aggregations"]}
    assert counts == {t: epsilon * noise // costs.UNITS[t] for t in costs.AGGREGATION_TYPES}
    assert counts["COUNT_DISTINCT"] <= counts["COUNT"] and counts["SUM"] > counts["AVG"] > counts["STDDEV"]


def test_budget_falls_with_each_spend_exactly_as_previewed(setup, server):
    s = setup
    s.dp_template()  # epsilon 3, noise 30: 90 COUNTs, 45 SUMs, 30 AVGs, 22 STDDEVs
    alice_mid = s.collab.mid(s.alice)
    [summary] = budgets(s.alice, alice_mid)
    assert summary["budget"]["differentialPrivacy"]["epsilon"] == 3
    assert remaining(summary) == {"AVG": 30, "COUNT": 90, "COUNT_DISTINCT": 90, "SUM": 45, "STDDEV": 22}
    maxima = {a["type"]: a["maxCount"] for a in summary["budget"]["differentialPrivacy"]["aggregations"]}
    preview = s.alice.client.preview_privacy_impact(membershipIdentifier=alice_mid, parameters=DP)
    assert maxima == {a["type"]: a["maxCount"] for a in preview["privacyImpact"]["differentialPrivacy"]["aggregations"]}

    with server.db.write() as conn:
        spent = service.spend(conn, s.collab.id, time.time(), {"AVG": 1, "COUNT": 2}, [])
    assert spent.users_noise_per_query == 30 and spent.epsilon == costs.query_cost({"AVG": 1, "COUNT": 2}, 30)
    [summary] = budgets(s.alice, alice_mid)
    assert remaining(summary) == {"AVG": 28, "COUNT": 85, "COUNT_DISTINCT": 85, "SUM": 42, "STDDEV": 21}
    assert summary["updateTime"] >= summary["createTime"]

    for _ in range(28):
        with server.db.write() as conn:
            service.spend(conn, s.collab.id, time.time(), {"AVG": 1}, [])
    [summary] = budgets(s.carol, s.collab.mid(s.carol))
    assert remaining(summary) == {"AVG": 0, "COUNT": 1, "COUNT_DISTINCT": 1, "SUM": 0, "STDDEV": 0}
    with server.db.write() as conn, pytest.raises(BudgetExhausted):
        service.spend(conn, s.collab.id, time.time(), {"SUM": 1}, [])
    with server.db.write() as conn:  # the refused spend left nothing behind; the last COUNT still fits
        service.spend(conn, s.collab.id, time.time(), {"COUNT": 1}, [])
    assert set(remaining(budgets(s.alice, alice_mid)[0]).values()) == {0}


def test_spending_without_a_policy_is_refused(setup, server):
    s = setup
    with server.db.write() as conn, pytest.raises(BudgetExhausted) as caught:
        service.spend(conn, s.collab.id, time.time(), {"COUNT": 1}, [])
    assert "no differential privacy policy" in caught.value.message
    with server.db.write() as conn:  # nothing to pay: no budget needed
        assert service.spend(conn, s.collab.id, time.time(), {"COUNT": 0}, [s.budgeted_arn]).epsilon == 0


def test_lists_page(setup):
    s = setup
    tables = []
    for i in range(3):
        table = create_table(s.bob, name=f"t{i}")
        tables.append(associate(s.bob, s.bob_mid, table["id"], name=f"t{i}"))
    made = [s.dp_template()["id"]]
    for association in tables:
        arn = (f"arn:aws:cleanrooms:us-east-1:{s.bob.id}:membership/{s.bob_mid}/configuredtableassociation/"
               f"{association['id']}")
        made.append(s.bob.client.create_privacy_budget_template(
            membershipIdentifier=s.bob_mid, privacyBudgetType="ACCESS_BUDGET",
            parameters={"accessBudget": {"budgetParameters": [{"type": "LIFETIME", "budget": 9}],
                                         "resourceArn": arn}})["privacyBudgetTemplate"]["id"])
    alice_mid = s.collab.mid(s.alice)
    first = s.alice.client.list_privacy_budget_templates(membershipIdentifier=alice_mid, maxResults=2)
    assert len(first["privacyBudgetTemplateSummaries"]) == 2 and "nextToken" in first
    listed = all_pages(s.alice.client, "list_privacy_budget_templates", "privacyBudgetTemplateSummaries",
                       membershipIdentifier=alice_mid, PaginationConfig={"PageSize": 1})
    assert [t["id"] for t in listed] == made[::-1]  # newest first
    page = s.alice.client.list_privacy_budgets(membershipIdentifier=alice_mid, privacyBudgetType="ACCESS_BUDGET",
                                               maxResults=2)
    assert len(page["privacyBudgetSummaries"]) == 2
    rest = s.alice.client.list_privacy_budgets(membershipIdentifier=alice_mid, privacyBudgetType="ACCESS_BUDGET",
                                               maxResults=2, nextToken=page["nextToken"])
    assert len(rest["privacyBudgetSummaries"]) == 1 and "nextToken" not in rest
    # a token is bound to its filter and caller
    raises("ValidationException", s.alice.client.list_privacy_budgets, membershipIdentifier=alice_mid,
           privacyBudgetType="DIFFERENTIAL_PRIVACY", nextToken=page["nextToken"])
    raises("ValidationException", s.carol.client.list_privacy_budgets, membershipIdentifier=s.collab.mid(s.carol),
           privacyBudgetType="ACCESS_BUDGET", nextToken=page["nextToken"])
    collaboration_listed = all_pages(s.dave.client, "list_collaboration_privacy_budget_templates",
                                     "collaborationPrivacyBudgetTemplateSummaries",
                                     collaborationIdentifier=s.collab.id, PaginationConfig={"PageSize": 3})
    assert [t["id"] for t in collaboration_listed] == made[::-1]


def _membership_calls(client, membership_id: str, template_id: str, association_arn: str) -> list:
    ref = {"membershipIdentifier": membership_id}
    template = {**ref, "privacyBudgetTemplateIdentifier": template_id}
    return [
        ("CreatePrivacyBudgetTemplate", client.create_privacy_budget_template,
         {**ref, "privacyBudgetType": "ACCESS_BUDGET", "parameters": {"accessBudget": {
             "budgetParameters": [{"type": "LIFETIME", "budget": 1}], "resourceArn": association_arn}}}),
        ("GetPrivacyBudgetTemplate", client.get_privacy_budget_template, template),
        ("UpdatePrivacyBudgetTemplate", client.update_privacy_budget_template,
         {**template, "privacyBudgetType": "DIFFERENTIAL_PRIVACY",
          "parameters": {"differentialPrivacy": {"epsilon": 20}}}),
        ("DeletePrivacyBudgetTemplate", client.delete_privacy_budget_template, template),
        ("ListPrivacyBudgetTemplates", client.list_privacy_budget_templates, ref),
        ("ListPrivacyBudgets", client.list_privacy_budgets, {**ref, "privacyBudgetType": "DIFFERENTIAL_PRIVACY"}),
        ("PreviewPrivacyImpact", client.preview_privacy_impact, {**ref, "parameters": DP}),
    ]


def _collaboration_calls(client, collaboration_id: str, template_id: str) -> list:
    ref = {"collaborationIdentifier": collaboration_id}
    return [
        ("GetCollaborationPrivacyBudgetTemplate", client.get_collaboration_privacy_budget_template,
         {**ref, "privacyBudgetTemplateIdentifier": template_id}),
        ("ListCollaborationPrivacyBudgetTemplates", client.list_collaboration_privacy_budget_templates, ref),
        ("ListCollaborationPrivacyBudgets", client.list_collaboration_privacy_budgets,
         {**ref, "privacyBudgetType": "DIFFERENTIAL_PRIVACY"}),
    ]


def _owner_view(s: Setup) -> tuple:
    templates = all_pages(s.bob.client, "list_privacy_budget_templates", "privacyBudgetTemplateSummaries",
                          membershipIdentifier=s.bob_mid)
    full = [s.bob.client.get_privacy_budget_template(membershipIdentifier=s.bob_mid,
                                                     privacyBudgetTemplateIdentifier=t["id"])["privacyBudgetTemplate"]
            for t in templates]
    tags = [s.bob.client.list_tags_for_resource(resourceArn=t["arn"])["tags"] for t in templates]
    return full, tags, budgets(s.bob, s.bob_mid), budgets(s.bob, s.bob_mid, "ACCESS_BUDGET")


def test_other_accounts_reach_no_privacy_budget(account, server):
    """Every operation, tried by every kind of outsider: co-members (who read but do not change), the invitee,
    a removed member, a member that left, a member of another collaboration and a stranger."""
    s = Setup(account, server, extra=2)
    removed, left = s.extras
    removed_mid = s.collab.mid(removed)
    s.alice.client.delete_member(collaborationIdentifier=s.collab.id, accountId=removed.id)
    left_mid = s.collab.mid(left)
    left.client.delete_membership(membershipIdentifier=left_mid)
    t = s.dp_template(tags={"k": "v"})
    s.access_template()
    before = _owner_view(s)
    attackers = {"co_member": (s.alice, s.collab.mid(s.alice)), "co_member_2": (s.carol, s.collab.mid(s.carol)),
                 "invitee": (s.dave, None), "removed": (removed, removed_mid), "left": (left, None),
                 "other_member": (s.eve, s.other.mid(s.eve)), "stranger": (s.stranger, None)}
    for role, (p, own_mid) in attackers.items():
        # membership calls on Bob's membership: as if it did not exist
        for (name, call, params), (_, unknown_call, unknown_params) in zip(
                _membership_calls(p.client, s.bob_mid, t["id"], s.budgeted_arn),
                _membership_calls(p.client, UNKNOWN_ID, t["id"], s.budgeted_arn)):
            foreign = raises("ResourceNotFoundException", call, **params)
            unknown = raises("ResourceNotFoundException", unknown_call, **unknown_params)
            assert (foreign["resourceType"], foreign["resourceId"]) == ("MEMBERSHIP", s.bob_mid), (role, name)
            assert foreign["Error"]["Message"].replace(s.bob_mid, "X") == \
                unknown["Error"]["Message"].replace(UNKNOWN_ID, "X"), (role, name)
        if own_mid and role.startswith("co_member"):  # they read it, and cannot change it or budget Bob's table
            calls = _membership_calls(p.client, own_mid, t["id"], s.budgeted_arn)
            raises("ResourceNotFoundException", calls[0][1], **calls[0][2])
            for _, call, params in calls[2:4]:
                raises("AccessDeniedException", call, **params)
        elif own_mid:  # Bob's template does not exist under the attacker's own membership
            for name, call, params in _membership_calls(p.client, own_mid, t["id"], s.budgeted_arn)[:4]:
                if role == "removed" and name == "CreatePrivacyBudgetTemplate":  # not ACTIVE: refused for that first
                    assert raises("ConflictException", call, **params)["reason"] == "INVALID_STATE"
                    continue
                response = raises("ResourceNotFoundException", call, **params)
                assert response["resourceId"] in (t["id"], s.budgeted_arn), (role, name)
            assert budgets(p, own_mid) == [] and budgets(p, own_mid, "ACCESS_BUDGET") == []
        if role in ("co_member", "co_member_2", "invitee"):
            view = p.client.get_collaboration_privacy_budget_template(
                collaborationIdentifier=s.collab.id, privacyBudgetTemplateIdentifier=t["id"])
            assert view["collaborationPrivacyBudgetTemplate"]["id"] == t["id"]
        else:  # collaboration calls: Bob's collaboration, like an unknown one, is denied
            for (name, call, params), (_, unknown_call, unknown_params) in zip(
                    _collaboration_calls(p.client, s.collab.id, t["id"]),
                    _collaboration_calls(p.client, UNKNOWN_ID, t["id"])):
                denied = raises("AccessDeniedException", call, **params)
                unknown = raises("AccessDeniedException", unknown_call, **unknown_params)
                assert denied["Error"]["Message"].replace(s.collab.id, "X") == \
                    unknown["Error"]["Message"].replace(UNKNOWN_ID, "X"), (role, name)
        if role == "other_member":  # nor does it show through the attacker's own collaboration
            response = raises("ResourceNotFoundException", p.client.get_collaboration_privacy_budget_template,
                              collaborationIdentifier=s.other.id, privacyBudgetTemplateIdentifier=t["id"])
            assert response["resourceId"] == t["id"]
        for call, extra in ((p.client.list_tags_for_resource, {}), (p.client.tag_resource, {"tags": {"x": "y"}}),
                            (p.client.untag_resource, {"tagKeys": ["k"]})):
            raises("ResourceNotFoundException", call, resourceArn=t["arn"], **extra)
    assert _owner_view(s) == before


def _spend_repeatedly(url: str, collaboration_id: str, association_arn: str, attempts: int, out) -> None:
    """In its own process: try to spend one COUNT and one use of the access budget, `attempts` times."""
    import time as clock

    from opencleanrooms.services import privacy_budgets as spending
    from opencleanrooms.storage.database import Database

    db, paid = Database(url), 0
    for _ in range(attempts):
        try:
            with db.write() as conn:
                spending.spend(conn, collaboration_id, clock.time(), {"COUNT": 1}, [association_arn])
            paid += 1
        except BudgetExhausted:
            pass
    out.put(paid)


def test_concurrent_spends_in_several_processes_never_overspend(setup, server):
    import multiprocessing

    s = setup
    s.bob.client.create_privacy_budget_template(
        membershipIdentifier=s.bob_mid, privacyBudgetType="DIFFERENTIAL_PRIVACY",
        parameters={"differentialPrivacy": {"epsilon": 2, "usersNoisePerQuery": 10}})  # 20 COUNTs
    s.access_template([{"type": "LIFETIME", "budget": 15}])  # the tighter budget: 15 uses
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    workers = [ctx.Process(target=_spend_repeatedly, args=(server.db.url, s.collab.id, s.budgeted_arn, 8, out))
               for _ in range(4)]
    for w in workers:
        w.start()
    paid = sum(out.get(timeout=120) for _ in workers)
    for w in workers:
        w.join(60)
        assert w.exitcode == 0
    assert paid == 15  # 32 attempts; exactly what the tighter budget allows, and a refused one spends nothing
    [dp] = budgets(s.alice, s.collab.mid(s.alice))
    assert remaining(dp)["COUNT"] == 20 - 15
    [access] = budgets(s.alice, s.collab.mid(s.alice), "ACCESS_BUDGET")
    assert access["budget"]["accessBudget"]["aggregateRemainingBudget"] == 0
