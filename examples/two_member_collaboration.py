"""A two-member clean room with the sample tables, end to end, with unmodified boto3.

Start a server and load the sample catalog first (the demo accounts own the sample tables):

    opencleanrooms catalog import --samples
    opencleanrooms serve

then run `python examples/two_member_collaboration.py [ENDPOINT]` (default http://localhost:8000). It prints the
schemas both members see. docs/example.md shows a run.
"""

from __future__ import annotations

import json
import sys

import boto3

ENDPOINT = sys.argv[1] if len(sys.argv) > 1 else "http://localhost:8000"
ADVERTISER = ("111111111111", "AKIAOCRDEMO111111111", "opencleanrooms-demo-secret-111111111111")
PUBLISHER = ("222222222222", "AKIAOCRDEMO222222222", "opencleanrooms-demo-secret-222222222222")
ROLE = "arn:aws:iam::111111111111:role/cleanrooms-read"


def client(account):
    return boto3.client("cleanrooms", endpoint_url=ENDPOINT, region_name="us-east-1",
                        aws_access_key_id=account[1], aws_secret_access_key=account[2])


def main() -> dict:
    return schemas_seen(*setup())


def setup() -> tuple[dict, dict]:
    """The collaboration and both memberships (account id -> membership), with both tables associated."""
    advertiser, publisher = client(ADVERTISER), client(PUBLISHER)

    # The advertiser creates the collaboration (it will run queries) and invites the publisher (it gets results).
    collaboration = advertiser.create_collaboration(
        name="Campaign reach", description="Advertiser customers x publisher impressions",
        creatorDisplayName="Advertiser", creatorMemberAbilities=["CAN_QUERY"], queryLogStatus="DISABLED",
        members=[{"accountId": PUBLISHER[0], "displayName": "Publisher", "memberAbilities": ["CAN_RECEIVE_RESULTS"]}],
    )["collaboration"]
    advertiser_membership = advertiser.create_membership(collaborationIdentifier=collaboration["id"],
                                                         queryLogStatus="DISABLED")["membership"]
    publisher_membership = publisher.create_membership(collaborationIdentifier=collaboration["id"],
                                                       queryLogStatus="DISABLED")["membership"]

    # Each member brings its own table from its catalog, under an analysis rule, into the collaboration.
    for member, membership, database, table, columns, rule in (
        (advertiser, advertiser_membership, "advertiser", "customers", ["user_id", "segment", "age_band"],
         {"list": {"joinColumns": ["user_id"], "listColumns": ["segment", "age_band"]}}),
        (publisher, publisher_membership, "publisher", "impressions", ["user_id", "campaign_id", "clicks"],
         {"list": {"joinColumns": ["user_id"], "listColumns": ["campaign_id", "clicks"]}}),
    ):
        configured = member.create_configured_table(
            name=table, tableReference={"glue": {"databaseName": database, "tableName": table}},
            allowedColumns=columns, analysisMethod="DIRECT_QUERY")["configuredTable"]
        member.create_configured_table_analysis_rule(configuredTableIdentifier=configured["id"],
                                                     analysisRuleType="LIST", analysisRulePolicy={"v1": rule})
        association = member.create_configured_table_association(
            membershipIdentifier=membership["id"], configuredTableIdentifier=configured["id"], name=table,
            roleArn=ROLE)["configuredTableAssociation"]
        member.create_configured_table_association_analysis_rule(
            membershipIdentifier=membership["id"], configuredTableAssociationIdentifier=association["id"],
            analysisRuleType="LIST",
            analysisRulePolicy={"v1": {"list": {"allowedResultReceivers": [PUBLISHER[0]]}}})

    return collaboration, {ADVERTISER[0]: advertiser_membership, PUBLISHER[0]: publisher_membership}


def schemas_seen(collaboration: dict, _memberships: dict) -> dict:
    """Both members see both tables as schemas of the collaboration."""
    advertiser, publisher = client(ADVERTISER), client(PUBLISHER)
    seen = {}
    for name, member in (("advertiser", advertiser), ("publisher", publisher)):
        summaries = member.list_schemas(collaborationIdentifier=collaboration["id"])["schemaSummaries"]
        schemas = member.batch_get_schema(collaborationIdentifier=collaboration["id"],
                                          names=[s["name"] for s in summaries])["schemas"]
        seen[name] = [{"name": s["name"], "owner": s["creatorAccountId"], "columns": s["columns"],
                       "analysisRuleTypes": s["analysisRuleTypes"],
                       "status": [(d["analysisType"], d["status"]) for d in s["schemaStatusDetails"]]}
                      for s in sorted(schemas, key=lambda s: s["name"])]
    return seen


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
