"""Differential privacy queries over HTTP: Bob's impressions table has a CUSTOM rule with differentialPrivacy on
user_id and a DP budget he sets; Alice's queries get noisy answers, spend the budget PreviewPrivacyImpact priced,
and are refused once it is spent."""

from __future__ import annotations

from opencleanrooms.privacy import costs
from opencleanrooms.results import read_result
from tests.e2e.test_protected_queries import build_world, run
from tests.support.builders import all_pages

EPSILON, NOISE = 1, 10  # 10 units: e.g. one COUNT_DISTINCT + one AVG (4), then two SUMs (2 each)


def dp_world(server, party, tmp_path):
    """build_world's CUSTOM tables, then Bob turns on differential privacy on impressions (user_id)."""
    world = build_world(server, party, tmp_path, rule_type="CUSTOM")
    world.bob.client.update_configured_table_analysis_rule(
        configuredTableIdentifier=world.tables["impressions"]["id"], analysisRuleType="CUSTOM",
        analysisRulePolicy={"v1": {"custom": {"allowedAnalyses": ["ANY_QUERY"],
                                              "allowedAnalysisProviders": [world.alice.id],
                                              "differentialPrivacy": {"columns": [{"name": "user_id"}]}}}})
    return world


def remaining(world) -> dict:
    [summary] = all_pages(world.alice.client, "list_privacy_budgets", "privacyBudgetSummaries",
                          membershipIdentifier=world.mid(world.alice), privacyBudgetType="DIFFERENTIAL_PRIVACY")
    return {a["type"]: a["remainingCount"] for a in summary["budget"]["differentialPrivacy"]["aggregations"]}


def answer(query: dict) -> dict:
    assert query["status"] == "SUCCESS", query
    [row] = read_result(query["result"]["output"]["s3"]["location"]).to_pylist()
    return row


def test_dp_queries_are_noisy_priced_and_refused_when_the_budget_is_spent(server, party, tmp_path):
    world = dp_world(server, party, tmp_path)
    bob = world.bob
    bob.client.create_privacy_budget_template(
        membershipIdentifier=world.mid(bob), privacyBudgetType="DIFFERENTIAL_PRIVACY", autoRefresh="NONE",
        parameters={"differentialPrivacy": {"epsilon": EPSILON, "usersNoisePerQuery": NOISE}})
    preview = world.alice.client.preview_privacy_impact(
        membershipIdentifier=world.mid(world.alice),
        parameters={"differentialPrivacy": {"epsilon": EPSILON, "usersNoisePerQuery": NOISE}})
    promised = {a["type"]: a["maxCount"] for a in preview["privacyImpact"]["differentialPrivacy"]["aggregations"]}
    assert remaining(world) == promised
    units = EPSILON * NOISE

    first = run(world, "SELECT COUNT(DISTINCT user_id) AS users, AVG(clicks) AS mean FROM impressions "
                       "WHERE campaign_id <> 'none'")
    row = answer(first)
    assert abs(row["users"] - 150) < 100  # 150 users; Laplace scale 10
    parameters = first["differentialPrivacy"]["sensitivityParameters"]
    assert [p["aggregationType"] for p in parameters] == ["COUNT_DISTINCT", "AVG"]
    assert all(p["userContributionLimit"] >= 1 for p in parameters)
    assert parameters[1]["minColumnValue"] <= row["mean"] <= parameters[1]["maxColumnValue"]
    spent = costs.UNITS["COUNT_DISTINCT"] + costs.UNITS["AVG"]
    assert remaining(world) == {t: (units - spent) // costs.UNITS[t] for t in costs.AGGREGATION_TYPES}
    assert remaining(world)["COUNT_DISTINCT"] == promised["COUNT_DISTINCT"] - spent

    sums = [answer(run(world, "SELECT SUM(clicks) AS total FROM impressions"))["total"] for _ in range(2)]
    assert sums[0] != sums[1]  # repeated identical queries differ
    spent += 2 * costs.UNITS["SUM"]
    assert remaining(world) == {t: (units - spent) // costs.UNITS[t] for t in costs.AGGREGATION_TYPES}

    refused = run(world, "SELECT AVG(clicks) FROM impressions")  # 3 units; 2 are left
    assert refused["status"] == "FAILED"
    assert "result" not in refused
    assert "budget" in refused["error"]["message"].lower(), refused["error"]
    assert remaining(world) == {t: (units - spent) // costs.UNITS[t] for t in costs.AGGREGATION_TYPES}


def test_dp_tables_refuse_other_shapes(server, party, tmp_path):
    world = dp_world(server, party, tmp_path)
    for sql, text in (("SELECT campaign_id, COUNT(*) FROM impressions GROUP BY campaign_id", "GROUP BY"),
                      ("SELECT user_id FROM impressions", "COUNT, COUNT(DISTINCT), SUM, AVG or STDDEV")):
        query = run(world, sql)
        assert query["status"] == "FAILED" and query["error"]["code"] == "MALFORMED_QUERY", query
        assert text in query["error"]["message"]


def test_dp_queries_without_a_budget_template_are_refused(server, party, tmp_path):
    world = dp_world(server, party, tmp_path)
    query = run(world, "SELECT COUNT(DISTINCT user_id) FROM impressions")
    assert query["status"] == "FAILED" and "result" not in query, query
