"""Throttling, fault injection and failure containment, through a real server and real retrying clients."""

from __future__ import annotations

import json
import re

import pytest

from tests.support.builders import raises
from tests.support.server import ServerProcess


@pytest.fixture(scope="module")
def traffic_server(tmp_path_factory):
    server = ServerProcess(
        tmp_path_factory.mktemp("traffic"),
        "--throttle", "ListCollaborations=2:3",
        "--fault", "ListMemberships=InternalServerException@calls:1,2",
        "--fault", "GetMembership=ThrottlingException@every:2",
        "--fault", "ListTagsForResource=crash@every:1",
    ).start()
    yield server
    server.stop()


def test_throttling_exception_and_standard_retries_recover(traffic_server):
    account = traffic_server.new_account()
    plain = traffic_server.client(account)
    statuses = []
    for _ in range(6):
        try:
            plain.list_collaborations()
            statuses.append(200)
        except plain.exceptions.ThrottlingException as exc:
            assert exc.response["ResponseMetadata"]["HTTPStatusCode"] == 429
            assert exc.response["Error"]["Message"] == "Rate exceeded"
            statuses.append(429)
    assert statuses[:3] == [200, 200, 200] and 429 in statuses[3:]
    other = traffic_server.client(traffic_server.new_account())
    assert other.list_collaborations()["collaborationList"] == []  # buckets are per account
    retrying = traffic_server.client(account, retries={"mode": "standard", "total_max_attempts": 10})
    results = [retrying.list_collaborations()["ResponseMetadata"]["RetryAttempts"] for _ in range(4)]
    assert sum(results) > 0  # it was throttled and recovered every time


def test_injected_faults_are_well_formed_and_retried(traffic_server):
    account = traffic_server.new_account()
    plain = traffic_server.client(account)
    response = raises("InternalServerException", plain.list_memberships)
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert "injected" in response["Error"]["Message"]
    retrying = traffic_server.client(account, retries={"mode": "standard", "total_max_attempts": 3})
    recovered = retrying.list_memberships()  # call 2 fails, call 3 succeeds
    assert recovered["ResponseMetadata"]["RetryAttempts"] == 1
    unknown = "00000000-0000-4000-8000-000000000000"
    first = raises("ResourceNotFoundException", plain.get_membership, membershipIdentifier=unknown)
    assert first["ResponseMetadata"]["HTTPStatusCode"] == 404
    raises("ThrottlingException", plain.get_membership, membershipIdentifier=unknown)


def test_unexpected_failures_stay_inside(traffic_server):
    account = traffic_server.new_account()
    client = traffic_server.client(account)
    arn = f"arn:aws:cleanrooms:us-east-1:{account.account_id}:collaboration/00000000-0000-4000-8000-000000000000"
    response = raises("InternalServerException", client.list_tags_for_resource, resourceArn=arn)
    request_id = response["ResponseMetadata"]["RequestId"]
    assert response["Error"]["Message"] == f"An internal error occurred. Request ID: {request_id}"
    body = json.dumps(response)
    for secret in ("/srv/", "SELECT", "Traceback", "RuntimeError", "storage.py"):
        assert secret not in body
    log = traffic_server.log_tail(200_000)
    assert f"request {request_id} (ListTagsForResource) failed" in log and "Traceback" in log
    assert "injected crash in ListTagsForResource" in log


def test_one_access_log_line_per_request(traffic_server):
    account = traffic_server.new_account()
    client = traffic_server.client(account)
    request_id = client.list_collaborations()["ResponseMetadata"]["RequestId"]
    lines = [line for line in traffic_server.log_tail(200_000).splitlines() if f"request_id={request_id}" in line]
    assert len(lines) == 1
    assert re.search(rf"request_id={request_id} account={account.account_id} operation=ListCollaborations "
                     r"status=200 latency_ms=\d+\.\d+", lines[0])


def test_rate_faults_reproduce_with_the_same_seed(tmp_path):
    def sequence(seed: int) -> list[int]:
        server = ServerProcess(tmp_path / f"s{seed}-{len(list(tmp_path.iterdir()))}",
                               "--fault", "ListCollaborations=InternalServerException@rate:0.5",
                               "--fault-seed", str(seed)).start()
        try:
            client = server.client(server.new_account(), check=True)
            out = []
            for _ in range(20):
                try:
                    client.list_collaborations()
                    out.append(200)
                except client.exceptions.InternalServerException:
                    out.append(500)
            return out
        finally:
            server.stop()

    first = sequence(3)
    assert first == sequence(3)
    assert 200 in first and 500 in first
    assert first != sequence(4)
