"""`opencleanrooms budgets` over a running server's database: after Alice's DP query the operator's view shows
the same remaining counts as ListPrivacyBudgets, the epsilon spent, the refresh date, and Bob's access budget."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime

from opencleanrooms.privacy import costs
from tests.e2e.test_differential_privacy_queries import answer, dp_world, remaining
from tests.e2e.test_protected_queries import run


def budgets(server, *extra) -> str:
    return subprocess.run([sys.executable, "-m", "opencleanrooms", "budgets", *server.storage_args, *extra],
                          check=True, capture_output=True, text=True).stdout


def test_budgets_show_queries_left_epsilon_and_refreshes(server, party, tmp_path):
    world = dp_world(server, party, tmp_path)
    bob = world.bob
    assert budgets(server, "--collaboration", world.collaboration["id"]).strip() == \
        f"No privacy budgets in collaboration {world.collaboration['id']}."
    bob.client.create_privacy_budget_template(
        membershipIdentifier=world.mid(bob), privacyBudgetType="DIFFERENTIAL_PRIVACY", autoRefresh="CALENDAR_MONTH",
        parameters={"differentialPrivacy": {"epsilon": 2, "usersNoisePerQuery": 10}})
    association = world.associations["impressions"]
    arn = (f"arn:aws:cleanrooms:us-east-1:{bob.id}:membership/{world.mid(bob)}/configuredtableassociation/"
           f"{association['id']}")
    bob.client.create_privacy_budget_template(
        membershipIdentifier=world.mid(bob), privacyBudgetType="ACCESS_BUDGET",
        parameters={"accessBudget": {"resourceArn": arn, "budgetParameters": [
            {"type": "CALENDAR_DAY", "budget": 5, "autoRefresh": "ENABLED"}, {"type": "LIFETIME", "budget": 9}]}})
    answer(run(world, "SELECT COUNT(DISTINCT user_id) AS users, SUM(clicks) AS total FROM impressions"))

    text = budgets(server, "--collaboration", world.collaboration["id"])
    left = remaining(world)  # 20 units, 3 spent
    assert left == {t: (20 - 3) // costs.UNITS[t] for t in costs.AGGREGATION_TYPES}
    assert f"Collaboration {world.collaboration['id']} (reach)" in text
    assert "epsilon: 0.3 spent of 2 (1.7 left); noise per query: 10 users" in text
    assert (f"queries left (each type alone, left/total): COUNT {left['COUNT']}/20, COUNT DISTINCT "
            f"{left['COUNT_DISTINCT']}/20, SUM {left['SUM']}/10, AVG {left['AVG']}/6, STDDEV {left['STDDEV']}/5"
            ) in text
    now = datetime.now(UTC)
    first = datetime(now.year + (now.month == 12), now.month % 12 + 1, 1, tzinfo=UTC)
    assert f"next refresh: {first:%Y-%m-%d} 00:00 UTC" in text
    tomorrow = datetime.fromtimestamp((now.timestamp() // 86400 + 1) * 86400, UTC)
    assert f"CALENDAR_DAY: 4 of 5 left (period {now:%Y-%m-%d} 00:00 UTC to {tomorrow:%Y-%m-%d} 00:00 UTC; " \
           f"refreshes {tomorrow:%Y-%m-%d} 00:00 UTC)" in text
    assert "LIFETIME: 8 of 9 left (never refreshes)" in text
    assert "aggregate remaining: 4" in text
    assert f"Collaboration {world.collaboration['id']}" in budgets(server)  # all collaborations
