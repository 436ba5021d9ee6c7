"""Restarts lose nothing acknowledged, and page tokens survive them."""

from __future__ import annotations

import signal

from tests.support.builders import create_collaboration, join, member
from tests.support.server import ServerProcess


class _Party:
    def __init__(self, server, account):
        self.account, self.id, self.client = account, account.account_id, server.client(account)


def test_everything_survives_restarts_and_sigkill(tmp_path):
    server = ServerProcess(tmp_path / "data").start()
    try:
        a, b = (_Party(server, server.new_account()) for _ in range(2))
        collaborations = [create_collaboration(a, [member(b)], name=f"p{i}", tags={"i": str(i)}) for i in range(5)]
        memberships = [join(b, c["id"]) for c in collaborations]
        token = b.client.list_memberships(maxResults=2)["nextToken"]
        before = (a.client.list_collaborations(), b.client.list_memberships())
        for sig in (signal.SIGTERM, signal.SIGKILL):
            server.stop(sig)
            server.start()
            a.client, b.client = server.client(a.account), server.client(b.account)
            after = (a.client.list_collaborations(), b.client.list_memberships())
            assert [x["collaborationList"] for x in after[:1]] == [before[0]["collaborationList"]]
            assert after[1]["membershipSummaries"] == before[1]["membershipSummaries"]
            assert a.client.list_tags_for_resource(resourceArn=collaborations[3]["arn"])["tags"] == {"i": "3"}
            rest = b.client.list_memberships(maxResults=2, nextToken=token)["membershipSummaries"]
            assert [m["id"] for m in rest] == [m["id"] for m in reversed(memberships)][2:4]
    finally:
        server.stop()


def test_list_summaries_missing_from_older_rows_are_rebuilt_at_start(tmp_path):
    """A database from before summaries were stored (schema version 2) is upgraded and its rows get summaries."""
    server = ServerProcess(tmp_path / "data").start()
    try:
        a, b = (_Party(server, server.new_account()) for _ in range(2))
        collaborations = [create_collaboration(a, [member(b)], name=f"old{i}") for i in range(3)]
        memberships = [join(b, c["id"]) for c in collaborations[:2]]
        before = (a.client.list_collaborations(), b.client.list_collaborations(), b.client.list_memberships())
        server.stop()
        with server.db.write() as conn:  # back to what version 2 had
            conn.exec_driver_sql("ALTER TABLE members DROP COLUMN summary")
            conn.exec_driver_sql("ALTER TABLE memberships DROP COLUMN summary")
            conn.exec_driver_sql("DELETE FROM schema_version WHERE version > 2")
        server.db.dispose()
        server.start()
        a.client, b.client = server.client(a.account), server.client(b.account)
        after = (a.client.list_collaborations(), b.client.list_collaborations(), b.client.list_memberships())
        for old, new, key in zip(before, after, ("collaborationList", "collaborationList", "membershipSummaries")):
            assert new[key] == old[key]
        assert [m["id"] for m in after[2]["membershipSummaries"]] == [m["id"] for m in reversed(memberships)]
    finally:
        server.stop()
