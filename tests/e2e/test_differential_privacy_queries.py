"""Differential privacy queries over HTTP: Bob's impressions table has a CUSTOM rule with differentialPrivacy on
user_id and a DP budget he sets; Alice's queries get noisy answers, spend the budget PreviewPrivacyImpact priced,
and are refused once it is spent."""

from __future__ import annotations

import duckdb

from opencleanrooms.privacy import costs, mechanisms
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
    assert list(row) == ["users", "mean"]  # the noisy answer only: no exact cells reach the result
    assert abs(row["users"] - 150) < 14 * NOISE  # 150 users, Laplace scale 10: missed once in a million
    parameters = first["differentialPrivacy"]["sensitivityParameters"]
    assert [p["aggregationType"] for p in parameters] == ["COUNT_DISTINCT", "AVG"]
    assert all(p["userContributionLimit"] >= 1 for p in parameters)
    assert parameters[1]["minColumnValue"] <= row["mean"] <= parameters[1]["maxColumnValue"]
    spent = costs.UNITS["COUNT_DISTINCT"] + costs.UNITS["AVG"]
    assert remaining(world) == {t: (units - spent) // costs.UNITS[t] for t in costs.AGGREGATION_TYPES}
    assert remaining(world)["COUNT_DISTINCT"] == promised["COUNT_DISTINCT"] - spent

    # a float sum: two draws of the integer Laplace at scale 50 are equal about once in 200
    sums = [answer(run(world, "SELECT SUM(CAST(clicks AS DOUBLE)) AS total FROM impressions"))["total"]
            for _ in range(2)]
    assert sums[0] != sums[1]  # repeated identical queries differ
    spent += 2 * costs.UNITS["SUM"]
    assert remaining(world) == {t: (units - spent) // costs.UNITS[t] for t in costs.AGGREGATION_TYPES}

    refused = run(world, "SELECT AVG(clicks) FROM impressions")  # 3 units; 2 are left
    assert refused["status"] == "FAILED"
    assert "result" not in refused
    assert "differential privacy budget cannot pay" in refused["error"]["message"], refused["error"]
    assert remaining(world) == {t: (units - spent) // costs.UNITS[t] for t in costs.AGGREGATION_TYPES}


def test_dp_tables_refuse_other_shapes(server, party, tmp_path):
    world = dp_world(server, party, tmp_path)
    for sql, text in (("SELECT campaign_id, COUNT(*) FROM impressions GROUP BY campaign_id HAVING COUNT(*) > 9",
                       "HAVING"),
                      ("SELECT campaign_id, COUNT(*) FROM impressions GROUP BY campaign_id ORDER BY clicks",
                       "ORDER BY may only name outputs"),
                      ("SELECT user_id FROM impressions", "COUNT, COUNT(DISTINCT), SUM, AVG or STDDEV")):
        query = run(world, sql)
        assert query["status"] == "FAILED" and query["error"]["code"] == "MALFORMED_QUERY", query
        assert text in query["error"]["message"]


def test_dp_queries_without_a_budget_template_are_refused(server, party, tmp_path):
    world = dp_world(server, party, tmp_path)
    query = run(world, "SELECT COUNT(DISTINCT user_id) FROM impressions")
    assert query["status"] == "FAILED" and "result" not in query, query


def test_grouped_dp_queries_release_only_crowded_groups_and_spend_what_the_preview_says(server, party, tmp_path):
    """GROUP BY: a campaign with one user is not released, crowded campaigns are, with noise; every grouped query
    pays one COUNT_DISTINCT more (the key release), exactly as the remaining counts say."""
    world = dp_world(server, party, tmp_path)
    with duckdb.connect() as con:  # 700 + 400 users in two campaigns, one user alone in a third
        con.execute(f"""COPY (SELECT printf('u%04d', i % 1100) AS user_id,
                           IF(i % 1100 < 700, 'c0', 'c1') AS campaign_id, CAST(i % 7 AS BIGINT) AS clicks
                           FROM range(3300) t(i)
                           UNION ALL SELECT 'lonely', 'solo', 3 FROM range(4))
                        TO '{world.paths["impressions"]}' (FORMAT parquet)""")
    bob = world.bob
    bob.client.create_privacy_budget_template(
        membershipIdentifier=world.mid(bob), privacyBudgetType="DIFFERENTIAL_PRIVACY", autoRefresh="NONE",
        parameters={"differentialPrivacy": {"epsilon": EPSILON, "usersNoisePerQuery": NOISE}})
    preview = world.alice.client.preview_privacy_impact(
        membershipIdentifier=world.mid(world.alice),
        parameters={"differentialPrivacy": {"epsilon": EPSILON, "usersNoisePerQuery": NOISE}})
    promised = {a["type"]: a["maxCount"] for a in preview["privacyImpact"]["differentialPrivacy"]["aggregations"]}
    units = promised["COUNT_DISTINCT"]  # the preview's unit: one COUNT DISTINCT, what a key release costs
    assert remaining(world) == promised and units == EPSILON * NOISE
    assert mechanisms.group_threshold(NOISE) < 400 - 10 * NOISE  # c1 passes (scale NOISE); `solo` does not

    first = run(world, "SELECT campaign_id, COUNT(DISTINCT user_id) AS users, SUM(clicks) AS total "
                       "FROM impressions GROUP BY campaign_id ORDER BY users DESC")
    assert first["status"] == "SUCCESS", first
    found = read_result(first["result"]["output"]["s3"]["location"]).to_pylist()
    assert [r["campaign_id"] for r in found] == ["c0", "c1"]
    assert abs(found[0]["users"] - 700) < 14 * NOISE and abs(found[1]["users"] - 400) < 14 * NOISE
    assert found[0]["users"] != 700 or found[1]["users"] != 400 or found[0]["total"] != 6300
    parameters = first["differentialPrivacy"]["sensitivityParameters"]
    assert [p["aggregationType"] for p in parameters] == ["COUNT_DISTINCT", "SUM", "COUNT_DISTINCT"]
    assert "GROUP BY" in parameters[-1]["aggregationExpression"]
    spent = costs.UNITS["COUNT_DISTINCT"] + costs.UNITS["SUM"] + costs.UNITS["COUNT_DISTINCT"]
    assert remaining(world) == {t: (units - spent) // costs.UNITS[t] for t in costs.AGGREGATION_TYPES}

    [bob_view] = all_pages(bob.client, "list_collaboration_privacy_budgets", "collaborationPrivacyBudgetSummaries",
                           collaborationIdentifier=world.collaboration["id"], privacyBudgetType="DIFFERENTIAL_PRIVACY")
    assert {a["type"]: a["remainingCount"] for a in bob_view["budget"]["differentialPrivacy"]["aggregations"]} == \
        remaining(world)  # the data owner sees the same spend

    solo = [r["campaign_id"] for r in answer_rows(run(world, "SELECT campaign_id, COUNT(*) AS n FROM impressions "
                                                              "GROUP BY campaign_id"))]
    assert sorted(solo) == ["c0", "c1"]
    spent += costs.UNITS["COUNT"] + costs.UNITS["COUNT_DISTINCT"]
    assert remaining(world) == {t: (units - spent) // costs.UNITS[t] for t in costs.AGGREGATION_TYPES}
    assert units - spent == costs.UNITS["AVG"] + costs.UNITS["COUNT_DISTINCT"]  # one grouped AVG fits exactly

    refused = run(world, "SELECT campaign_id, AVG(clicks), COUNT(*) FROM impressions GROUP BY campaign_id")
    assert refused["status"] == "FAILED" and "result" not in refused, refused
    assert "differential privacy budget cannot pay" in refused["error"]["message"]
    last = run(world, "SELECT campaign_id, AVG(clicks) AS mean FROM impressions GROUP BY campaign_id LIMIT 1")
    assert len(answer_rows(last)) <= 1
    assert remaining(world) == dict.fromkeys(costs.AGGREGATION_TYPES, 0)


def answer_rows(query: dict) -> list[dict]:
    assert query["status"] == "SUCCESS", query
    return read_result(query["result"]["output"]["s3"]["location"]).to_pylist()
