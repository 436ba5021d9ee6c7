"""The cost model: preview counts, remaining counts and query prices agree exactly."""

from __future__ import annotations

from fractions import Fraction

import pytest

from opencleanrooms.privacy import costs


def test_units_order_matches_what_aws_shows():
    units = costs.UNITS
    assert units["COUNT_DISTINCT"] <= units["COUNT"] < units["SUM"] < units["AVG"] < units["STDDEV"]
    assert units["AVG"] == units["SUM"] + units["COUNT"]  # AVG = SUM + COUNT (sharing the bounds)
    assert units["STDDEV"] == units["SUM"] + 1 + units["COUNT"]  # + a sum of squares


@pytest.mark.parametrize("epsilon", [1, 3, 7, 20])
@pytest.mark.parametrize("noise", [10, 30, 37, 100])
def test_preview_is_floor_of_epsilon_over_cost(epsilon, noise):
    for entry in costs.preview(epsilon, noise):
        price = costs.cost(entry["type"], noise)
        assert entry["maxCount"] == int(Fraction(epsilon) / price)
        assert entry["maxCount"] * price <= epsilon < (entry["maxCount"] + 1) * price


@pytest.mark.parametrize("aggregation_type", costs.AGGREGATION_TYPES)
def test_spending_max_count_one_by_one_exhausts_exactly(aggregation_type):
    epsilon, noise = 3, 37
    spent = Fraction(0)
    allowed = costs.max_count(epsilon, noise, aggregation_type)
    for done in range(allowed):
        assert costs.remaining_count(epsilon, spent, noise, aggregation_type) == allowed - done
        price = costs.query_cost({aggregation_type: 1}, noise)
        assert costs.can_pay(epsilon, spent, price)
        spent += price
    assert costs.remaining_count(epsilon, spent, noise, aggregation_type) == 0
    assert not costs.can_pay(epsilon, spent, costs.query_cost({aggregation_type: 1}, noise))


def test_query_cost_adds_up_and_fractions_round_trip():
    price = costs.query_cost({"AVG": 2, "COUNT": 1, "STDDEV": 0}, 30)
    assert price == Fraction(2 * 3 + 1, 30)
    assert costs.decode_fraction(costs.encode_fraction(price)) == price
    assert costs.decode_fraction(None) == 0
    with pytest.raises(ValueError):
        costs.query_cost({"COUNT": -1}, 30)
    with pytest.raises(ValueError):
        costs.unit_epsilon(0)


def test_budget_aggregations_lists_every_type_in_model_order():
    entries = costs.budget_aggregations(2, Fraction(1, 10), 10)
    assert [e["type"] for e in entries] == list(costs.AGGREGATION_TYPES)
    count = next(e for e in entries if e["type"] == "COUNT")
    assert count == {"type": "COUNT", "maxCount": 20, "remainingCount": 19}
    assert all(e["remainingCount"] == 0 for e in costs.budget_aggregations(2, Fraction(5), 10))
