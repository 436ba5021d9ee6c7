"""Token buckets per (account, operation)."""

from __future__ import annotations

import pytest

from opencleanrooms.traffic.throttle import Throttle, parse_rule


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_burst_then_steady_rate_per_account_and_operation():
    clock = Clock()
    throttle = Throttle({"ListMemberships": (2.0, 3.0)}, clock=clock)
    assert [throttle.allow("a", "ListMemberships") for _ in range(4)] == [True, True, True, False]
    assert throttle.allow("b", "ListMemberships")  # another account has its own bucket
    assert throttle.allow("a", "GetMembership")  # unlisted operations are not limited
    clock.now = 0.5  # one token back at 2/s
    assert [throttle.allow("a", "ListMemberships") for _ in range(2)] == [True, False]
    clock.now = 100.0  # refills only up to the burst
    assert sum(throttle.allow("a", "ListMemberships") for _ in range(10)) == 3


def test_wildcard_and_profiles():
    throttle = Throttle.from_settings("none", ["*=1:1", "ListCollaborations=100"])
    assert throttle.allow("a", "GetCollaboration") and not throttle.allow("a", "GetCollaboration")
    assert all(throttle.allow("a", "ListCollaborations") for _ in range(100))
    aws = Throttle.from_settings("aws", [])
    assert sum(aws.allow("a", "BatchGetCollaborationAnalysisTemplate") for _ in range(10)) == 5
    assert all(aws.allow("a", "ListCollaborations") for _ in range(1000))


@pytest.mark.parametrize("bad", ["ListMemberships", "=5", "X=0", "X=-1", "X=abc", "X=5:0", "X=5:x"])
def test_bad_rules_are_refused(bad):
    with pytest.raises(ValueError):
        parse_rule(bad)


def test_unknown_profile_is_refused():
    with pytest.raises(ValueError, match="unknown throttle profile"):
        Throttle.from_settings("fast", [])
