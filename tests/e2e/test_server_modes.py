"""How the server is started: demo keys and the bind address, several regions, several worker processes."""

from __future__ import annotations

import re
import time

import botocore.exceptions
import pytest

from opencleanrooms.auth.demo import DEMO_ACCOUNTS
from tests.support.builders import all_pages, create_collaboration, join, member, raises
from tests.support.server import Account, ServerProcess

DEMO = [Account(*row) for row in DEMO_ACCOUNTS]


class _Party:
    def __init__(self, server, account, region="us-east-1"):
        self.account, self.id = account, account.account_id
        self.client = server.client(account, region=region)


def test_first_start_prints_endpoint_and_demo_keys_that_work_on_loopback(tmp_path):
    server = ServerProcess(tmp_path / "data").start()
    try:
        banner = server.log_tail()
        assert f"http://localhost:{server.port}" in banner
        for account, key, secret in DEMO_ACCOUNTS:
            assert f"account {account}: AWS_ACCESS_KEY_ID={key} AWS_SECRET_ACCESS_KEY={secret}" in banner
        alice, bob = _Party(server, DEMO[0]), _Party(server, DEMO[1])
        c = create_collaboration(alice, [member(bob)])
        assert bob.client.list_collaborations()["collaborationList"][0]["id"] == c["id"]
    finally:
        server.stop()


def test_demo_keys_are_refused_off_loopback_unless_allowed(tmp_path):
    server = ServerProcess(tmp_path / "data", "--host", "0.0.0.0").start()  # the later --host wins
    try:
        assert "demo credentials are refused" in server.log_tail()
        raises("UnrecognizedClientException", server.client(DEMO[0]).list_collaborations)
        own = server.new_account()
        assert server.client(own).list_collaborations()["collaborationList"] == []
    finally:
        server.stop()
    allowed = ServerProcess(tmp_path / "data", "--host", "0.0.0.0", "--allow-demo-credentials").start()
    try:
        assert allowed.client(DEMO[0]).list_collaborations()["collaborationList"] == []
    finally:
        allowed.stop()


def test_regions_are_separate_and_only_served_ones_are_accepted(tmp_path):
    server = ServerProcess(tmp_path / "data", "--region", "us-east-1", "--region", "eu-west-1").start()
    try:
        a_account, b_account = server.new_account(), server.new_account()
        east_a, east_b = _Party(server, a_account), _Party(server, b_account)
        west_a, west_b = _Party(server, a_account, "eu-west-1"), _Party(server, b_account, "eu-west-1")
        c = create_collaboration(west_a, [member(west_b)])
        assert c["arn"].startswith(f"arn:aws:cleanrooms:eu-west-1:{a_account.account_id}:collaboration/")
        assert join(west_b, c["id"])["arn"].startswith("arn:aws:cleanrooms:eu-west-1:")
        assert east_b.client.list_collaborations()["collaborationList"] == []
        assert east_b.client.list_memberships()["membershipSummaries"] == []
        raises("AccessDeniedException", east_a.client.get_collaboration, collaborationIdentifier=c["id"])
        raises("ResourceNotFoundException", east_a.client.list_tags_for_resource, resourceArn=c["arn"])
        assert [x["id"] for x in west_b.client.list_collaborations()["collaborationList"]] == [c["id"]]
        with pytest.raises(botocore.exceptions.ClientError) as info:
            server.client(a_account, region="ap-south-1").list_collaborations()
        assert info.value.response["Error"]["Code"] == "InvalidSignatureException"
    finally:
        server.stop()


def _worker_pids(server, count: int, timeout: float = 90.0) -> set[str]:
    """The worker processes that have started, once `count` have (the port answers as soon as the first one
    listens; on a loaded machine the second can take many seconds more to import and start)."""
    deadline = time.monotonic() + timeout
    while True:
        pids = set(re.findall(r"Started server process \[(\d+)\]", server.log_tail(100_000)))
        if len(pids) >= count or time.monotonic() > deadline:
            return pids
        time.sleep(0.2)


def test_tokens_and_writes_work_across_worker_processes(tmp_path):
    server = ServerProcess(tmp_path / "data", "--workers", "2", "--quota", "collaborations=100").start()
    try:
        assert len(_worker_pids(server, 2)) == 2  # both processes up, so that connections reach either
        a_account, b_account = server.new_account(), server.new_account()
        a, b = _Party(server, a_account), _Party(server, b_account)
        collaborations = [create_collaboration(a, [member(b)], name=f"w{i}") for i in range(30)]
        expected = [c["id"] for c in reversed(collaborations)]
        for _ in range(3):
            seen, token = [], None
            while True:
                fresh = server.client(b_account)  # a new connection, which either process may accept
                page = fresh.list_collaborations(maxResults=4, **({"nextToken": token} if token else {}))
                seen.extend(c["id"] for c in page["collaborationList"])
                token = page.get("nextToken")
                if not token:
                    break
            assert seen == expected
        assert [x["id"] for x in all_pages(b.client, "list_collaborations", "collaborationList")] == expected
        assert len(_worker_pids(server, 2)) == 2  # and still the same two
    finally:
        server.stop()


def test_settings_from_a_toml_file_with_flags_on_top(tmp_path):
    config = tmp_path / "server.toml"
    config.write_text('regions = ["eu-central-1"]\nquotas = { members = 1 }\nport = 1\n')
    server = ServerProcess(tmp_path / "data", "--config", str(config)).start()  # --port from the harness wins
    try:
        a, b, c = (_Party(server, server.new_account(), "eu-central-1") for _ in range(3))
        response = raises("ServiceQuotaExceededException", create_collaboration, a, [member(b), member(c)])
        assert response["quotaValue"] == 1.0
        assert create_collaboration(a, [member(b)])["arn"].startswith("arn:aws:cleanrooms:eu-central-1:")
    finally:
        server.stop()
    config.write_text("colour = 'blue'\n")
    with pytest.raises(RuntimeError, match="unknown setting"):
        ServerProcess(tmp_path / "data", "--config", str(config)).start(timeout=20)
