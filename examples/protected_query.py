"""A protected query over the sample tables: one the rules allow, and one they refuse.

Start a server and load the sample catalog first (the demo accounts own the sample tables):

    opencleanrooms catalog import --samples
    opencleanrooms serve

then run `python examples/protected_query.py [ENDPOINT]` (default http://localhost:8000). It builds the two-member
collaboration of two_member_collaboration.py (LIST rules; the publisher receives results), then the advertiser runs
two queries. docs/example.md shows a run.
"""

from __future__ import annotations

import json
import sys
import time

from two_member_collaboration import ADVERTISER, PUBLISHER, client, setup

ALLOWED = ("SELECT DISTINCT c.segment, i.campaign_id FROM customers c "
           "INNER JOIN impressions i ON c.user_id = i.user_id")
REFUSED = "SELECT DISTINCT c.user_id FROM customers c INNER JOIN impressions i ON c.user_id = i.user_id"


def run(advertiser, membership_id: str, sql: str) -> dict:
    """Start the query with its result sent to the publisher, and wait until it ends."""
    query = advertiser.start_protected_query(
        type="SQL", membershipIdentifier=membership_id, sqlParameters={"queryString": sql},
        resultConfiguration={"outputConfiguration": {"member": {"accountId": PUBLISHER[0]}}})["protectedQuery"]
    while query["status"] in ("SUBMITTED", "STARTED"):
        time.sleep(0.1)
        query = advertiser.get_protected_query(membershipIdentifier=membership_id,
                                               protectedQueryIdentifier=query["id"])["protectedQuery"]
    return query


def main() -> dict:
    _, memberships = setup()
    advertiser, publisher = client(ADVERTISER), client(PUBLISHER)
    # The publisher receives results: it says where, once, on its membership.
    publisher.update_membership(membershipIdentifier=memberships[PUBLISHER[0]]["id"], defaultResultConfiguration={
        "outputConfiguration": {"s3": {"bucket": "publisher-results", "keyPrefix": "reach", "resultFormat": "CSV"}}})
    mine = memberships[ADVERTISER[0]]["id"]
    allowed, refused = run(advertiser, mine, ALLOWED), run(advertiser, mine, REFUSED)
    return {"allowed": {"id": allowed["id"], "status": allowed["status"], "result": allowed["result"]},
            "refused": {"id": refused["id"], "status": refused["status"], "error": refused["error"]}}


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
