"""Differential privacy on the sample data: the publisher protects its impressions with a DP budget, the advertiser
runs DP queries, watches the budget fall, and is refused once it is spent.

Start a server and load the sample catalog first (the demo accounts own the sample tables):

    opencleanrooms catalog import --samples
    opencleanrooms serve

then run `python examples/differential_privacy.py [ENDPOINT]` (default http://localhost:8000).
docs/differential-privacy.md walks through a run.
"""

from __future__ import annotations

import csv
import os
import time
import urllib.parse

from two_member_collaboration import ADVERTISER, PUBLISHER, ROLE, client

EPSILON, NOISE = 1, 10  # the publisher's budget: epsilon 1, noise of 10 users per query
QUERIES = [
    "SELECT COUNT(DISTINCT user_id) AS users FROM impressions",
    "SELECT COUNT(DISTINCT user_id) AS users FROM impressions",
    "SELECT COUNT(*) AS impressions, AVG(spend) AS avg_spend FROM impressions",
    "SELECT campaign_id, COUNT(DISTINCT user_id) AS users FROM impressions GROUP BY campaign_id",
    "SELECT AVG(spend) AS avg_spend FROM impressions",
]
ORDER = {"COUNT": "COUNT", "COUNT_DISTINCT": "COUNT DISTINCT", "SUM": "SUM", "AVG": "AVG", "STDDEV": "STDDEV"}


def setup(advertiser, publisher) -> str:
    """The collaboration, the publisher's impressions under a CUSTOM rule with differential privacy on user_id,
    and its DP budget. Returns the advertiser's membership id."""
    collaboration = advertiser.create_collaboration(
        name="DP reach", description="Advertiser queries publisher impressions under differential privacy",
        creatorDisplayName="Advertiser", creatorMemberAbilities=["CAN_QUERY", "CAN_RECEIVE_RESULTS"],
        queryLogStatus="DISABLED", members=[{"accountId": PUBLISHER[0], "displayName": "Publisher",
                                             "memberAbilities": []}])["collaboration"]
    mine = advertiser.create_membership(
        collaborationIdentifier=collaboration["id"], queryLogStatus="DISABLED",
        defaultResultConfiguration={"outputConfiguration": {"s3": {
            "bucket": "advertiser-results", "keyPrefix": "dp", "resultFormat": "CSV"}}})["membership"]
    theirs = publisher.create_membership(collaborationIdentifier=collaboration["id"],
                                         queryLogStatus="DISABLED")["membership"]

    table = publisher.create_configured_table(
        name="impressions", tableReference={"glue": {"databaseName": "publisher", "tableName": "impressions"}},
        allowedColumns=["user_id", "campaign_id", "clicks", "spend"], analysisMethod="DIRECT_QUERY",
    )["configuredTable"]
    publisher.create_configured_table_analysis_rule(
        configuredTableIdentifier=table["id"], analysisRuleType="CUSTOM",
        analysisRulePolicy={"v1": {"custom": {"allowedAnalyses": ["ANY_QUERY"],
                                              "allowedAnalysisProviders": [ADVERTISER[0]],
                                              "differentialPrivacy": {"columns": [{"name": "user_id"}]}}}})
    association = publisher.create_configured_table_association(
        membershipIdentifier=theirs["id"], configuredTableIdentifier=table["id"], name="impressions",
        roleArn=ROLE)["configuredTableAssociation"]
    publisher.create_configured_table_association_analysis_rule(
        membershipIdentifier=theirs["id"], configuredTableAssociationIdentifier=association["id"],
        analysisRuleType="CUSTOM", analysisRulePolicy={"v1": {"custom": {"allowedResultReceivers": [ADVERTISER[0]]}}})
    publisher.create_privacy_budget_template(
        membershipIdentifier=theirs["id"], privacyBudgetType="DIFFERENTIAL_PRIVACY", autoRefresh="NONE",
        parameters={"differentialPrivacy": {"epsilon": EPSILON, "usersNoisePerQuery": NOISE}})
    return mine["id"]


def left(advertiser, membership_id: str) -> str:
    """How many more aggregations of each type the budget pays for (each type alone)."""
    [summary] = advertiser.list_privacy_budgets(membershipIdentifier=membership_id,
                                                privacyBudgetType="DIFFERENTIAL_PRIVACY")["privacyBudgetSummaries"]
    counts = {a["type"]: a["remainingCount"] for a in summary["budget"]["differentialPrivacy"]["aggregations"]}
    return ", ".join(f"{name} {counts[t]}" for t, name in ORDER.items())


def run(advertiser, membership_id: str, sql: str) -> dict:
    query = advertiser.start_protected_query(type="SQL", membershipIdentifier=membership_id,
                                             sqlParameters={"queryString": sql})["protectedQuery"]
    while query["status"] in ("SUBMITTED", "STARTED"):
        time.sleep(0.1)
        query = advertiser.get_protected_query(membershipIdentifier=membership_id,
                                               protectedQueryIdentifier=query["id"])["protectedQuery"]
    return query


def rows(query: dict) -> list[dict]:
    """The result's rows. Without an S3 endpoint the server writes results to its own disk (a file:// location)."""
    path = urllib.parse.unquote(query["result"]["output"]["s3"]["location"].removeprefix("file://"))
    files = sorted(os.path.join(path, n) for n in os.listdir(path)) if os.path.isdir(path) else [path]
    found = []
    for name in files:
        with open(name, newline="") as handle:
            found += list(csv.DictReader(handle))
    return found


def main() -> None:
    advertiser, publisher = client(ADVERTISER), client(PUBLISHER)
    membership_id = setup(advertiser, publisher)
    preview = advertiser.preview_privacy_impact(
        membershipIdentifier=membership_id,
        parameters={"differentialPrivacy": {"epsilon": EPSILON, "usersNoisePerQuery": NOISE}})
    promised = {a["type"]: a["maxCount"] for a in preview["privacyImpact"]["differentialPrivacy"]["aggregations"]}
    print(f"budget: epsilon {EPSILON}, noise of {NOISE} users per query; it pays for "
          + ", ".join(f"{name} {promised[t]}" for t, name in ORDER.items()))
    for sql in QUERIES:
        query = run(advertiser, membership_id, sql)
        print(sql)
        if query["status"] == "SUCCESS":
            found = rows(query)
            for row in found:
                print("  answer: " + ", ".join(f"{k} {v}" for k, v in row.items()))
            if not found:
                print("  answer: no rows")
        else:
            print(f"  refused: {query['error']['message']}")
        print(f"  left: {left(advertiser, membership_id)}")


if __name__ == "__main__":
    main()
