"""Resource quotas: AWS's defaults, configurable, and ServiceQuotaExceededException when exceeded."""

from __future__ import annotations

import pytest

from tests.support.builders import create_collaboration, join, member, raises
from tests.support.server import ServerProcess


class _Party:
    def __init__(self, server):
        self.account = server.new_account()
        self.id, self.client = self.account.account_id, server.client(self.account)


@pytest.fixture(scope="module")
def default_server(tmp_path_factory):
    server = ServerProcess(tmp_path_factory.mktemp("quota-default")).start()
    yield server
    server.stop()


def test_default_quotas(default_server):
    a, *others = [_Party(default_server) for _ in range(7)]
    response = raises("ServiceQuotaExceededException", a.client.create_collaboration,
                      members=[member(p) for p in others[:6]], name="n", creatorMemberAbilities=[],
                      creatorDisplayName="A", queryLogStatus="DISABLED")
    assert (response["quotaName"], response["quotaValue"]) == ("Members invited per collaboration", 5.0)
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 402
    created = [create_collaboration(a, [member(p) for p in others[:5]], name=f"q{i}") for i in range(10)]
    response = raises("ServiceQuotaExceededException", create_collaboration, a, name="eleventh")
    assert response["quotaValue"] == 10.0
    assert len(a.client.list_collaborations()["collaborationList"]) == 10
    a.client.delete_collaboration(collaborationIdentifier=created[0]["id"])
    create_collaboration(a, name="fits again")


def test_configured_quotas(tmp_path):
    server = ServerProcess(tmp_path / "data", "--quota", "memberships=2", "--quota", "members=1").start()
    try:
        a, b, c = (_Party(server) for _ in range(3))
        raises("ServiceQuotaExceededException", create_collaboration, a, [member(b), member(c)])
        collaborations = [create_collaboration(a, [member(b)], name=f"m{i}") for i in range(3)]
        join(b, collaborations[0]["id"])
        join(b, collaborations[1]["id"])
        response = raises("ServiceQuotaExceededException", join, b, collaborations[2]["id"])
        assert response["quotaValue"] == 2.0
        assert len(b.client.list_memberships()["membershipSummaries"]) == 2
    finally:
        server.stop()


def test_unknown_quota_name_refuses_to_start(tmp_path):
    server = ServerProcess(tmp_path / "data", "--quota", "bogus=3")
    with pytest.raises(RuntimeError, match="unknown quota"):
        server.start(timeout=20)
