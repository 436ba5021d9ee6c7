"""Concurrent clients, two server processes on one database, and crashes in the middle of write bursts.

(a) Many threads, each with its own boto3 client and account, create collaborations, join, leave and remove
    members at once on the session server. Afterwards every acknowledged write is there, nobody holds two
    memberships of one collaboration, member rows and memberships agree, and no call failed with a 5xx or a
    database-lock message. Many clients of one account joining one collaboration at once: exactly one succeeds.
(b) The same on two server processes sharing one data directory, with writers on both; page tokens issued by one
    process work on the other.
(c) A write burst from several threads, the server SIGKILLed in the middle, restarted on the same data: every
    acknowledged collaboration and membership exists with its tags and members, and nothing visible is half
    written. Repeated for several kill/restart cycles.
"""

from __future__ import annotations

import collections
import random
import signal
import threading
import time
from dataclasses import dataclass, field

import botocore.exceptions
import pytest

from tests.support.builders import all_pages
from tests.support.figures import figures  # noqa: F401  (fixture)
from tests.support.server import ServerProcess

WORKERS = 12  # threads, each with its own boto3 client
STEPS = 25  # actions per worker in the mixed workload
SAME_ACCOUNT_JOINERS = 12
CRASH_CYCLES = 3
CRASH_WRITERS = 4
QUOTAS = ("--quota", "collaborations=10000", "--quota", "memberships=10000")
SEED = 20220217
TOLERATED = frozenset({"ConflictException"})  # what racing writers may legitimately get


@dataclass
class Acks:
    """Every write the server acknowledged, and every call that failed in a way it must not."""

    creates: dict = field(default_factory=dict)  # collaboration id -> {"creator", "members", "tags", "arn"}
    joins: dict = field(default_factory=dict)  # membership id -> (account, collaboration id)
    leaves: set = field(default_factory=set)  # membership ids
    removes: set = field(default_factory=set)  # (collaboration id, account)
    tolerated: collections.Counter = field(default_factory=collections.Counter)
    bad: list = field(default_factory=list)
    calls: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def error(self, what: str, exc: Exception) -> None:
        with self.lock:
            if isinstance(exc, botocore.exceptions.ClientError):
                code = exc.response["Error"]["Code"]
                status = exc.response["ResponseMetadata"]["HTTPStatusCode"]
                message = exc.response["Error"].get("Message", "")
                if code in TOLERATED and status < 500 and "locked" not in message.lower():
                    self.tolerated[code] += 1
                    return
                self.bad.append(f"{what}: {status} {code} {message}")
            else:
                self.bad.append(f"{what}: {exc!r}")


def _clients(server_for, accounts) -> list:
    """One client per account, made on this thread (creating boto3 clients is not thread-safe)."""
    return [server_for(i).client(account) for i, account in enumerate(accounts)]


# ------------------------------------------------------------------------------------------ mixed workload


def _worker(index: int, client, account, everyone: list, acks: Acks, barrier: threading.Barrier) -> None:
    rng = random.Random(SEED + index)
    me = account.account_id
    created: list[str] = []
    barrier.wait()
    for step in range(STEPS):
        action = rng.choice(("create", "join", "join", "leave", "remove"))
        what = f"worker {index} step {step} {action}"
        try:
            with acks.lock:
                acks.calls += 1
            if action == "create" and len(created) < 3:
                others = rng.sample([a for a in everyone if a != me], 4)
                tags = {"worker": str(index), "step": str(step)}
                c = client.create_collaboration(
                    members=[{"accountId": a, "memberAbilities": [], "displayName": f"m{a}"} for a in others],
                    name=f"w{index}s{step}", creatorMemberAbilities=["CAN_QUERY"], creatorDisplayName=f"c{me}",
                    queryLogStatus="DISABLED", tags=tags)["collaboration"]
                with acks.lock:
                    acks.creates[c["id"]] = {"creator": me, "members": others, "tags": tags, "arn": c["arn"]}
                created.append(c["id"])
                if rng.random() < 0.7:
                    m = client.create_membership(collaborationIdentifier=c["id"], queryLogStatus="DISABLED")
                    with acks.lock:
                        acks.joins[m["membership"]["id"]] = (me, c["id"])
            elif action == "join":
                invites = client.list_collaborations(memberStatus="INVITED")["collaborationList"]
                if invites:
                    cid = rng.choice(invites)["id"]
                    m = client.create_membership(collaborationIdentifier=cid, queryLogStatus="DISABLED")
                    with acks.lock:
                        acks.joins[m["membership"]["id"]] = (me, cid)
            elif action == "leave":
                mine = [m for m in client.list_memberships(status="ACTIVE")["membershipSummaries"]
                        if m["collaborationCreatorAccountId"] != me]
                if mine:
                    mid = rng.choice(mine)["id"]
                    client.delete_membership(membershipIdentifier=mid)
                    with acks.lock:
                        acks.leaves.add(mid)
            elif action == "remove" and created:
                cid = rng.choice(created)
                rows = [r for r in client.list_members(collaborationIdentifier=cid)["memberSummaries"]
                        if r["accountId"] != me and r["status"] in ("INVITED", "ACTIVE")]
                if rows:
                    target = rng.choice(rows)["accountId"]
                    client.delete_member(collaborationIdentifier=cid, accountId=target)
                    with acks.lock:
                        acks.removes.add((cid, target))
        except Exception as exc:  # noqa: BLE001 - every failure is judged by Acks.error
            acks.error(what, exc)


def run_mixed_workload(servers: list[ServerProcess], n_workers: int = WORKERS) -> tuple[Acks, list, list]:
    """`n_workers` threads (worker i on servers[i % len(servers)]) creating, joining, leaving and removing."""
    accounts = [servers[0].new_account() for _ in range(n_workers)]
    clients = _clients(lambda i: servers[i % len(servers)], accounts)
    everyone = [a.account_id for a in accounts]
    acks = Acks()
    barrier = threading.Barrier(n_workers)
    threads = [threading.Thread(target=_worker, args=(i, clients[i], accounts[i], everyone, acks, barrier))
               for i in range(n_workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a worker hung"
    return acks, accounts, clients


def verify_consistency(acks: Acks, accounts: list, clients: list) -> int:
    """Check every acknowledged write and the cross-table invariants; return how many acked writes were checked."""
    by_account = {a.account_id: c for a, c in zip(accounts, clients)}
    problems = list(acks.bad)
    memberships = {}  # (account, collaboration id) -> summary
    for account, client in by_account.items():
        seen = collections.Counter()
        for m in all_pages(client, "list_memberships", "membershipSummaries"):
            seen[m["collaborationId"]] += 1
            memberships[(account, m["collaborationId"])] = m
        problems += [f"{account} holds {n} memberships of {cid}" for cid, n in seen.items() if n > 1]
    for cid, spec in acks.creates.items():
        creator = by_account[spec["creator"]]
        try:
            creator.get_collaboration(collaborationIdentifier=cid)
            tags = creator.list_tags_for_resource(resourceArn=spec["arn"])["tags"]
            rows = all_pages(creator, "list_members", "memberSummaries", collaborationIdentifier=cid)
        except botocore.exceptions.ClientError as exc:
            problems.append(f"acknowledged collaboration {cid} unreadable: {exc}")
            continue
        if tags != spec["tags"]:
            problems.append(f"{cid}: tags {tags} != acknowledged {spec['tags']}")
        if [r["accountId"] for r in rows] != [spec["creator"], *spec["members"]]:
            problems.append(f"{cid}: members {[r['accountId'] for r in rows]} != {[spec['creator'], *spec['members']]}")
        for r in rows:
            m = memberships.get((r["accountId"], cid))
            status, mid = r["status"], r.get("membershipId")
            if status == "ACTIVE" and not (m and mid == m["id"] and m["status"] == "ACTIVE"):
                problems.append(f"{cid}/{r['accountId']}: ACTIVE member but membership {m} (row says {mid})")
            if status in ("INVITED", "LEFT") and (mid or m):
                problems.append(f"{cid}/{r['accountId']}: {status} member with a membership {mid} {m}")
            if status == "REMOVED" and (bool(mid) != bool(m) or (m and (m["id"] != mid or m["status"] != "REMOVED"))):
                problems.append(f"{cid}/{r['accountId']}: REMOVED member, row membership {mid}, membership {m}")
            if (cid, r["accountId"]) in acks.removes and status != "REMOVED":
                problems.append(f"{cid}/{r['accountId']}: acknowledged removal but status {status}")
    for mid, (account, cid) in acks.joins.items():
        m = memberships.get((account, cid))
        if mid in acks.leaves:
            if m and m["id"] == mid:
                problems.append(f"acknowledged leave of {mid} but it is still listed: {m}")
            continue
        if not m or m["id"] != mid:
            problems.append(f"acknowledged membership {mid} of {account} in {cid} missing (found {m})")
    for (account, cid), m in memberships.items():
        if cid in acks.creates:
            continue
        problems.append(f"{account} has a membership {m['id']} of unknown collaboration {cid}")
    assert not problems, f"{len(problems)} problems:\n" + "\n".join(problems[:30])
    return len(acks.creates) + len(acks.joins) + len(acks.leaves) + len(acks.removes)


def same_account_join_race(servers: list[ServerProcess], rounds: int = 3) -> int:
    """Many clients of ONE account join the same collaboration at once: exactly one may succeed."""
    creator_account, joiner_account = servers[0].new_account(), servers[0].new_account()
    creator = servers[0].client(creator_account)
    joiners = [servers[i % len(servers)].client(joiner_account) for i in range(SAME_ACCOUNT_JOINERS)]
    for _ in range(rounds):
        cid = creator.create_collaboration(
            members=[{"accountId": joiner_account.account_id, "memberAbilities": [], "displayName": "j"}],
            name="race", creatorMemberAbilities=["CAN_QUERY"], creatorDisplayName="c",
            queryLogStatus="DISABLED")["collaboration"]["id"]
        barrier = threading.Barrier(len(joiners))
        results: list = [None] * len(joiners)

        def join(i: int) -> None:
            barrier.wait()
            try:
                results[i] = joiners[i].create_membership(collaborationIdentifier=cid,
                                                          queryLogStatus="DISABLED")["membership"]["id"]
            except botocore.exceptions.ClientError as exc:
                results[i] = (exc.response["Error"]["Code"], exc.response.get("reason"),
                              exc.response["ResponseMetadata"]["HTTPStatusCode"], exc.response["Error"]["Message"])
            except Exception as exc:  # noqa: BLE001
                results[i] = repr(exc)

        threads = [threading.Thread(target=join, args=(i,)) for i in range(len(joiners))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        winners = [r for r in results if isinstance(r, str) and not r.startswith("(") and len(r) == 36]
        losers = [r for r in results if r not in winners]
        assert len(winners) == 1, results
        assert all(isinstance(r, tuple) and r[:3] == ("ConflictException", "ALREADY_EXISTS", 409) for r in losers), \
            results
        listed = [m for m in joiners[0].list_memberships()["membershipSummaries"] if m["collaborationId"] == cid]
        assert [m["id"] for m in listed] == winners
        rows = {r["accountId"]: r for r in creator.list_members(collaborationIdentifier=cid)["memberSummaries"]}
        assert rows[joiner_account.account_id]["status"] == "ACTIVE"
        assert rows[joiner_account.account_id]["membershipId"] == winners[0]
    return rounds * SAME_ACCOUNT_JOINERS


# ---------------------------------------------------------------------------------------------------- tests


def test_many_clients_create_join_and_leave_at_once(server, figures):
    acks, accounts, clients = run_mixed_workload([server])
    checked = verify_consistency(acks, accounts, clients)
    figures(f"concurrency[one server]: {WORKERS} workers, {acks.calls} actions, {len(acks.creates)} creates, "
            f"{len(acks.joins)} joins, {len(acks.leaves)} leaves, {len(acks.removes)} removals, "
            f"{sum(acks.tolerated.values())} tolerated conflicts, {checked} acknowledged writes verified")
    assert len(acks.creates) >= WORKERS and acks.joins and acks.leaves and acks.removes, "the workload did too little"


def test_concurrent_joins_by_one_account_give_exactly_one_membership(server, figures):
    calls = same_account_join_race([server])
    figures(f"concurrency[one server]: {calls} simultaneous CreateMembership calls by one account, one winner each")


@pytest.fixture
def two_servers(tmp_path):
    first = ServerProcess(tmp_path / "shared", *QUOTAS).start()
    try:
        second = ServerProcess(tmp_path / "shared", *QUOTAS).start()
    except Exception:
        first.stop()
        raise
    yield first, second
    second.stop()
    first.stop()


def test_two_processes_on_one_database(two_servers, figures):
    first, second = two_servers
    assert first.port != second.port and first.data_dir == second.data_dir
    acks, accounts, clients = run_mixed_workload([first, second])
    # Read back through the other process than each worker wrote to.
    readers = [(second if i % 2 == 0 else first).client(a) for i, a in enumerate(accounts)]
    checked = verify_consistency(acks, accounts, readers)
    joins = same_account_join_race([first, second])
    # Page tokens issued by one process are good on the other, in both directions.
    for a, b in ((first, second), (second, first)):
        walker = accounts[0]
        expected = [c["id"] for c in all_pages(a.client(walker), "list_collaborations", "collaborationList")]
        assert len(expected) > 2
        seen, token, turn = [], None, 0
        while True:
            client = (a if turn % 2 == 0 else b).client(walker)
            page = client.list_collaborations(maxResults=2, **({"nextToken": token} if token else {}))
            seen += [c["id"] for c in page["collaborationList"]]
            token, turn = page.get("nextToken"), turn + 1
            if not token:
                break
        assert seen == expected
        token = a.client(walker).list_memberships(maxResults=1).get("nextToken")
        if token:
            rest = all_pages(b.client(walker), "list_memberships", "membershipSummaries", PaginationConfig={
                "StartingToken": token})
            assert rest == all_pages(a.client(walker), "list_memberships", "membershipSummaries")[1:]
    figures(f"concurrency[two processes]: {acks.calls} actions on 2 processes, {checked} acknowledged writes "
            f"verified across processes, {joins} simultaneous same-account joins, tokens valid across processes")
    assert len(acks.creates) >= WORKERS and acks.joins and acks.leaves and acks.removes, "the workload did too little"


# ---------------------------------------------------------------------------------------------- crash safety


def _crash_tags(name: str) -> dict:
    return {"name": name, **{f"pad{i}": name * 3 for i in range(8)}}


def _membership_tags(account: str, name: str) -> dict:
    return {"by": account, "collaboration": name}


class Burst:
    """Writer threads creating collaborations and joiner threads joining them until the server goes away."""

    def __init__(self, server: ServerProcess, writers: list, invitees: list, cycle: int) -> None:
        self.acked_collaborations: dict[str, dict] = {}
        self.acked_memberships: dict[str, dict] = {}
        self.bad: list[str] = []
        self.exits: collections.Counter = collections.Counter()  # how each thread saw the server go away
        self.lock = threading.Lock()
        self.stop = threading.Event()
        config = {"connect_timeout": 2, "read_timeout": 15}
        self.threads = [
            threading.Thread(target=self._write, args=(server.client(w, **config), w, [i.account_id for i in invitees],
                                                       cycle))
            for w in writers
        ] + [threading.Thread(target=self._join, args=(server.client(i, **config), i)) for i in invitees]

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def acked(self) -> int:
        with self.lock:
            return len(self.acked_collaborations) + len(self.acked_memberships)

    def finish(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=60)
        assert not any(t.is_alive() for t in self.threads), "a burst thread hung"

    def _failed(self, exc: Exception) -> bool:
        """True when the thread should stop: the server went away. Refusals are recorded as problems."""
        if isinstance(exc, botocore.exceptions.ClientError):
            status = exc.response["ResponseMetadata"]["HTTPStatusCode"]
            with self.lock:
                self.bad.append(f"{status} {exc}")
            return False
        with self.lock:  # connection refused (after the kill) or cut (a request in flight when it came)
            self.exits["refused" if isinstance(exc, botocore.exceptions.EndpointConnectionError) else "cut"] += 1
        return True

    def _write(self, client, account, invitees: list, cycle: int) -> None:
        k = 0
        while not self.stop.is_set():
            name = f"crash-{account.account_id}-{cycle}-{k}"
            k += 1
            try:
                c = client.create_collaboration(
                    members=[{"accountId": a, "memberAbilities": [], "displayName": f"m{a}"} for a in invitees],
                    name=name, creatorMemberAbilities=["CAN_QUERY"], creatorDisplayName="writer",
                    queryLogStatus="DISABLED", tags=_crash_tags(name))["collaboration"]
            except Exception as exc:  # noqa: BLE001
                if self._failed(exc):
                    return
                continue
            with self.lock:
                self.acked_collaborations[c["id"]] = {"creator": account.account_id, "arn": c["arn"], "name": name,
                                                      "members": [account.account_id, *invitees]}

    def _join(self, client, account) -> None:
        while not self.stop.is_set():
            try:
                invites = client.list_collaborations(memberStatus="INVITED", maxResults=5)["collaborationList"]
                for c in invites:
                    m = client.create_membership(collaborationIdentifier=c["id"], queryLogStatus="DISABLED",
                                                 tags=_membership_tags(account.account_id, c["name"]))["membership"]
                    with self.lock:
                        self.acked_memberships[m["id"]] = {"account": account.account_id, "collaboration": c["id"],
                                                           "name": c["name"]}
                if not invites:
                    time.sleep(0.005)
            except Exception as exc:  # noqa: BLE001
                if self._failed(exc):
                    return


def verify_after_crash(server, writers, invitees, collaborations: dict, memberships: dict) -> list[str]:
    problems = []
    clients = {a.account_id: server.client(a) for a in (*writers, *invitees)}
    expected_members = lambda creator: [creator, *[i.account_id for i in invitees]]  # noqa: E731
    for cid, spec in collaborations.items():  # every acknowledged collaboration, complete
        client = clients[spec["creator"]]
        try:
            client.get_collaboration(collaborationIdentifier=cid)
        except botocore.exceptions.ClientError as exc:
            problems.append(f"acknowledged collaboration {cid} ({spec['name']}) lost: {exc}")
    for writer in writers:  # everything visible is whole, acknowledged or not
        client = clients[writer.account_id]
        listed = all_pages(client, "list_collaborations", "collaborationList")
        missing = {cid for cid, spec in collaborations.items() if spec["creator"] == writer.account_id} \
            - {c["id"] for c in listed}
        problems += [f"acknowledged collaboration {cid} not listed" for cid in missing]
        for c in listed:
            rows = all_pages(client, "list_members", "memberSummaries", collaborationIdentifier=c["id"])
            if [r["accountId"] for r in rows] != expected_members(writer.account_id):
                problems.append(f"{c['name']}: half-written members {[r['accountId'] for r in rows]}")
            tags = client.list_tags_for_resource(resourceArn=c["arn"])["tags"]
            if tags != _crash_tags(c["name"]):
                problems.append(f"{c['name']}: half-written tags {sorted(tags)}")
    for invitee in invitees:
        client = clients[invitee.account_id]
        listed = all_pages(client, "list_memberships", "membershipSummaries")
        for m in listed:
            tags = client.list_tags_for_resource(resourceArn=m["arn"])["tags"]
            if tags != _membership_tags(invitee.account_id, m["collaborationName"]):
                problems.append(f"membership {m['id']}: half-written tags {tags}")
        in_lists = {c["id"]: c for c in all_pages(client, "list_collaborations", "collaborationList")}
        for m in listed:
            c = in_lists.get(m["collaborationId"])
            if c is None or c["memberStatus"] != "ACTIVE" or c.get("membershipId") != m["id"]:
                problems.append(f"membership {m['id']} without a matching ACTIVE member row: {c}")
        ids = {m["id"] for m in listed}
        for mid, spec in memberships.items():
            if spec["account"] == invitee.account_id and mid not in ids:
                problems.append(f"acknowledged membership {mid} of {spec['name']} lost")
    return problems


def test_acknowledged_writes_survive_sigkill_mid_burst(tmp_path, figures):
    rng = random.Random(SEED)
    server = ServerProcess(tmp_path / "crash", *QUOTAS).start()
    writers = [server.new_account() for _ in range(CRASH_WRITERS)]
    invitees = [server.new_account() for _ in range(3)]
    collaborations: dict[str, dict] = {}
    memberships: dict[str, dict] = {}
    kills = cut = 0
    try:
        for cycle in range(CRASH_CYCLES):
            burst = Burst(server, writers, invitees, cycle)
            burst.start()
            target = 20 + rng.randint(0, 20)
            deadline = time.monotonic() + 30
            while burst.acked() < target and time.monotonic() < deadline:
                time.sleep(0.005)
            time.sleep(rng.uniform(0, 0.05))
            assert server.process.poll() is None, server.log_tail()
            server.stop(signal.SIGKILL)  # mid-burst: writers are in flight
            kills += 1
            burst.finish()
            cut += burst.exits["cut"]
            assert not burst.bad, burst.bad[:10]
            assert burst.acked() >= target, f"the burst stalled before the kill: {burst.acked()} < {target}"
            collaborations.update(burst.acked_collaborations)
            memberships.update(burst.acked_memberships)
            server.start()
            problems = verify_after_crash(server, writers, invitees, collaborations, memberships)
            assert not problems, f"after kill {kills}: " + "\n".join(problems[:30])
    finally:
        server.stop()
    figures(f"crash safety: {kills} SIGKILLs survived ({cut} requests in flight cut), {len(collaborations)} "
            f"acknowledged collaborations and {len(memberships)} acknowledged memberships verified after every restart")
    assert kills >= 3
    assert cut > 0, "no request was in flight at any kill: the kills did not land mid-burst"
