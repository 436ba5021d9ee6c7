"""Several server processes on one database (`--workers 2` plus a second server on the same data), on the backend
under test (SQLite, or PostgreSQL with OPENCLEANROOMS_TEST_BACKEND=postgresql): the failures of issue 9.

(a) Every member of one collaboration joins at once, then leaves at once: every call succeeds (no deadlock in
    the summary refresh, no 500), and member rows, memberships and summaries agree afterwards.
(b) Creates at the quota edge: 30 concurrent CreateCollaboration of one account against the quota of 10 give
    exactly 10 collaborations and 20 ServiceQuotaExceededException; likewise joins against a memberships quota.
(c) `opencleanrooms migrate` three times at once on a fresh database: all succeed, the schema is whole; and two
    servers starting at once on a fresh database both come up.
"""

from __future__ import annotations

import collections
import subprocess
import sys
import threading

import botocore.exceptions
import pytest
import sqlalchemy as sa

from opencleanrooms.storage import schema
from opencleanrooms.storage.database import MIGRATIONS, Database
from tests.support import backend
from tests.support.builders import all_pages
from tests.support.figures import figures  # noqa: F401  (fixture)
from tests.support.server import ServerProcess

MEMBERS = 24  # invited accounts of the collaboration whose members all join at once
UNTHROTTLED = ("--throttle-profile", "none")  # one account calls many times at once: no rate limit in the way


def _outcome(call):
    """'ok', the error code with its HTTP status, or the exception's repr: everything but 'ok' is judged."""
    try:
        call()
        return "ok"
    except botocore.exceptions.ClientError as exc:
        return f"{exc.response['Error']['Code']} {exc.response['ResponseMetadata']['HTTPStatusCode']}"
    except Exception as exc:  # noqa: BLE001
        return repr(exc)


def _at_once(calls: list) -> list[str]:
    """Run the calls on one thread each, released together; their outcomes in order."""
    barrier = threading.Barrier(len(calls))
    outcomes: list = [None] * len(calls)

    def run(i: int) -> None:
        barrier.wait()
        outcomes[i] = _outcome(calls[i])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a call hung"
    return outcomes


@pytest.fixture
def processes(tmp_path):
    """Factory: processes(*args) -> [a server with --workers 2, a second server], both on one database."""
    started: list[ServerProcess] = []

    def start(*args: str) -> list[ServerProcess]:
        data = tmp_path / f"shared{len(started)}"
        started.append(ServerProcess(data, "--workers", "2", *UNTHROTTLED, *args).start())
        started.append(ServerProcess(data, *UNTHROTTLED, *args).start())
        return started[-2:]

    yield start
    for server in reversed(started):
        server.stop()


def _server_errors(servers: list[ServerProcess]) -> list[str]:
    return [line for s in servers for line in s.log_tail(200_000).splitlines()
            if "Traceback" in line or "failed" in line and "request" in line]


def test_all_members_of_one_collaboration_join_and_leave_at_once(processes, figures):
    servers = processes("--quota", f"members={MEMBERS}")
    creator = servers[0].new_account()
    invitees = [servers[0].new_account() for _ in range(MEMBERS)]
    clients = [servers[i % 2].client(a, check=False) for i, a in enumerate(invitees)]
    owner = servers[0].client(creator)
    rounds, calls = 3, 0
    for r in range(rounds):
        cid = owner.create_collaboration(
            members=[{"accountId": a.account_id, "memberAbilities": [], "displayName": f"m{i}"}
                     for i, a in enumerate(invitees)],
            name=f"everyone joins {r}", creatorMemberAbilities=["CAN_QUERY"], creatorDisplayName="c",
            queryLogStatus="DISABLED")["collaboration"]["id"]
        owner.create_membership(collaborationIdentifier=cid, queryLogStatus="DISABLED")
        joined = _at_once([lambda c=c: c.create_membership(collaborationIdentifier=cid, queryLogStatus="DISABLED")
                           for c in clients])
        calls += len(joined)
        assert joined == ["ok"] * MEMBERS, collections.Counter(joined)
        rows = all_pages(owner, "list_members", "memberSummaries", collaborationIdentifier=cid)
        assert [r["status"] for r in rows] == ["ACTIVE"] * (MEMBERS + 1)
        mine = {}
        for a, c in zip(invitees, clients):
            listed = [m for m in c.list_memberships()["membershipSummaries"] if m["collaborationId"] == cid]
            assert len(listed) == 1 and listed[0]["status"] == "ACTIVE", listed
            summary = [x for x in c.list_collaborations()["collaborationList"] if x["id"] == cid]
            assert summary[0]["memberStatus"] == "ACTIVE" and summary[0]["membershipId"] == listed[0]["id"]
            mine[a.account_id] = listed[0]["id"]
        assert {r["accountId"]: r["membershipId"] for r in rows[1:]} == mine
        left = _at_once([lambda c=c, m=mine[a.account_id]: c.delete_membership(membershipIdentifier=m)
                         for a, c in zip(invitees, clients)])
        calls += len(left)
        assert left == ["ok"] * MEMBERS, collections.Counter(left)
        rows = all_pages(owner, "list_members", "memberSummaries", collaborationIdentifier=cid)
        assert [r["status"] for r in rows] == ["ACTIVE"] + ["LEFT"] * MEMBERS
    assert not _server_errors(servers), _server_errors(servers)[:5]
    figures(f"multiprocess[{backend.name()}]: {calls} simultaneous joins and leaves of {MEMBERS} members of one "
            "collaboration on 3 processes, all succeeded")


def test_concurrent_creates_at_the_collaborations_quota_give_exactly_the_quota(processes, figures):
    servers = processes()  # the default quota: 10 collaborations per account
    account = servers[0].new_account()
    clients = [servers[i % 2].client(account, check=False) for i in range(30)]
    outcomes = _at_once([lambda c=c, i=i: c.create_collaboration(
        members=[], name=f"edge {i}", creatorMemberAbilities=["CAN_QUERY"], creatorDisplayName="c",
        queryLogStatus="DISABLED") for i, c in enumerate(clients)])
    counts = collections.Counter(outcomes)
    assert counts["ok"] == 10, counts
    assert [o for o in outcomes if o != "ok"] == [o for o in outcomes if o.startswith("ServiceQuotaExceeded")], \
        counts
    assert counts.total() == 30
    listed = all_pages(servers[1].client(account), "list_collaborations", "collaborationList")
    assert len(listed) == 10
    assert not _server_errors(servers)
    figures(f"multiprocess[{backend.name()}]: 30 simultaneous CreateCollaboration of one account against the "
            f"quota of 10: {dict(counts)}")


def test_concurrent_joins_at_the_memberships_quota_give_exactly_the_quota(processes, figures):
    servers = processes("--quota", "memberships=5")
    joiner, creators = servers[0].new_account(), [servers[0].new_account() for _ in range(12)]
    ids = []
    for creator in creators:
        ids.append(servers[0].client(creator).create_collaboration(
            members=[{"accountId": joiner.account_id, "memberAbilities": [], "displayName": "j"}], name="q",
            creatorMemberAbilities=["CAN_QUERY"], creatorDisplayName="c",
            queryLogStatus="DISABLED")["collaboration"]["id"])
    clients = [servers[i % 2].client(joiner, check=False) for i in range(len(ids))]
    outcomes = _at_once([lambda c=c, cid=cid: c.create_membership(collaborationIdentifier=cid,
                                                                  queryLogStatus="DISABLED")
                         for c, cid in zip(clients, ids)])
    counts = collections.Counter(outcomes)
    assert counts["ok"] == 5 and counts.total() == 12, counts
    assert all(o.startswith("ServiceQuotaExceeded") for o in outcomes if o != "ok"), counts
    assert len(all_pages(servers[1].client(joiner), "list_memberships", "membershipSummaries")) == 5
    figures(f"multiprocess[{backend.name()}]: 12 simultaneous joins of one account against a memberships quota "
            f"of 5: {dict(counts)}")


def test_three_migrations_at_once_on_a_fresh_database(tmp_path, figures):
    data = tmp_path / "fresh"
    args = backend.storage_args(data)
    runs = [subprocess.Popen([sys.executable, "-m", "opencleanrooms", "migrate", *args], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for _ in range(3)]
    results = [(p.wait(timeout=120), *p.communicate()) for p in runs]
    assert [code for code, _, _ in results] == [0, 0, 0], results
    assert all(out.strip().endswith(f"schema version {len(MIGRATIONS)}") for _, out, _ in results), results
    db = Database(backend.database_url(data))
    with db.read() as conn:
        versions = conn.execute(sa.select(schema.schema_version.c.version).order_by(
            schema.schema_version.c.version)).scalars().all()
        tables = set(sa.inspect(conn).get_table_names())
    db.dispose()
    assert versions == list(range(1, len(MIGRATIONS) + 1))
    missing = {t.name for t in schema.metadata.sorted_tables} - tables
    assert not missing, missing
    figures(f"multiprocess[{backend.name()}]: 3 simultaneous `opencleanrooms migrate` on a fresh database all "
            f"succeeded; schema version {len(MIGRATIONS)}, {len(tables)} tables")


def test_two_servers_starting_at_once_on_a_fresh_database(tmp_path):
    """`serve` migrates and writes its start-up state (demo keys, token key) at every start."""
    data = tmp_path / "fresh"
    servers = [ServerProcess(data), ServerProcess(data)]
    errors: list = []

    def start(server: ServerProcess) -> None:
        try:
            server.start()
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(s,)) for s in servers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    try:
        assert not errors, errors
        account = servers[0].new_account()
        cid = servers[0].client(account).create_collaboration(
            members=[], name="after a racing start", creatorMemberAbilities=["CAN_QUERY"], creatorDisplayName="c",
            queryLogStatus="DISABLED")["collaboration"]["id"]
        page = servers[0].client(account).list_collaborations(maxResults=1)
        assert servers[1].client(account).get_collaboration(collaborationIdentifier=cid)
        assert page["collaborationList"][0]["id"] == cid
    finally:
        for s in servers:
            s.stop()
