"""Pages: sizes, order, signed tokens bound to caller/operation/filter, and walks that see each item once."""

from __future__ import annotations

import threading
import types

import pytest

from tests.conftest import Party
from tests.support.builders import all_pages, create_collaboration, join, member, raises

N = 260


@pytest.fixture(scope="module")
def seeded(server):
    """B is invited to N collaborations of A and has joined the first N-20 of them."""
    a, b = Party(server), Party(server)
    collaborations = [create_collaboration(a, [member(b)], name=f"c{i:03d}") for i in range(N)]
    memberships = [join(b, c["id"]) for c in collaborations[: N - 20]]
    return a, b, collaborations, memberships


def test_full_walks_yield_every_item_once_newest_first(seeded):
    a, b, collaborations, memberships = seeded
    listed = all_pages(b.client, "list_collaborations", "collaborationList")
    assert [c["id"] for c in listed] == [c["id"] for c in reversed(collaborations)]
    small_pages = all_pages(b.client, "list_memberships", "membershipSummaries", PaginationConfig={"PageSize": 7})
    assert [m["id"] for m in small_pages] == [m["id"] for m in reversed(memberships)]
    active = all_pages(b.client, "list_collaborations", "collaborationList", memberStatus="ACTIVE")
    invited = all_pages(b.client, "list_collaborations", "collaborationList", memberStatus="INVITED")
    assert len(active) == N - 20 and len(invited) == 20
    assert {c["id"] for c in invited} == {c["id"] for c in collaborations[N - 20:]}


def test_default_and_explicit_page_sizes(seeded):
    _, b, _, _ = seeded
    first = b.client.list_collaborations()
    assert len(first["collaborationList"]) == 100 and first["nextToken"]
    for size in (1, 37, 100):
        page = b.client.list_memberships(maxResults=size)
        assert len(page["membershipSummaries"]) == size and page["nextToken"]
    last = b.client.list_collaborations(memberStatus="INVITED", maxResults=20)
    assert len(last["collaborationList"]) == 20 and "nextToken" not in last


@pytest.mark.parametrize("bad", [0, 101, -1, 1000])
def test_max_results_out_of_range_is_rejected(server, seeded, bad):
    _, b, _, _ = seeded
    unchecked = server.client(b.account, parameter_validation=False)
    for call in (unchecked.list_collaborations, unchecked.list_memberships):
        response = raises("ValidationException", call, maxResults=bad)
        assert response["fieldList"][0]["name"] == "maxResults"


def test_tokens_are_bound_to_caller_operation_and_filter(server, seeded):
    a, b, collaborations, _ = seeded
    token = b.client.list_collaborations(maxResults=5)["nextToken"]
    raises("ValidationException", a.client.list_collaborations, nextToken=token)  # another caller
    raises("ValidationException", b.client.list_collaborations, nextToken=token, memberStatus="ACTIVE")
    raises("ValidationException", b.client.list_memberships, nextToken=token)
    raises("ValidationException", b.client.list_members, collaborationIdentifier=collaborations[0]["id"],
           nextToken=token)
    for garbage in ("x", "not-a-token", token[:-1], token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1],
                    "e30." + token.split(".")[1], "." * 50, "🙂"):
        response = raises("ValidationException", b.client.list_collaborations, nextToken=garbage)
        assert response["fieldList"] == [{"name": "nextToken", "message": "Invalid pagination token"}]
    # The genuine token still works, for the same caller and filter.
    assert len(b.client.list_collaborations(nextToken=token, maxResults=5)["collaborationList"]) == 5


def test_token_stays_valid_after_its_item_is_deleted(server, party):
    a, b = party(), party()
    collaborations = [create_collaboration(a, [member(b)], name=f"d{i}") for i in range(8)]
    memberships = [join(b, c["id"]) for c in collaborations]
    first = b.client.list_memberships(maxResults=3)
    assert [m["id"] for m in first["membershipSummaries"]] == [m["id"] for m in reversed(memberships)][:3]
    pointed_at = first["membershipSummaries"][-1]["id"]
    b.client.delete_membership(membershipIdentifier=pointed_at)
    rest = []
    token = first["nextToken"]
    while token:
        page = b.client.list_memberships(maxResults=3, nextToken=token)
        rest.extend(m["id"] for m in page["membershipSummaries"])
        token = page.get("nextToken")
    assert rest == [m["id"] for m in reversed(memberships)][3:]


def test_list_members_pages(party):
    a, *others = [party() for _ in range(6)]
    c = create_collaboration(a, [member(p) for p in others])
    pages = list(a.client.get_paginator("list_members").paginate(collaborationIdentifier=c["id"],
                                                                 PaginationConfig={"PageSize": 2}))
    assert [len(p["memberSummaries"]) for p in pages] == [2, 2, 2]
    assert [m["accountId"] for p in pages for m in p["memberSummaries"]] == [a.id] + [p.id for p in others]


def test_walk_sees_each_item_once_while_others_write(server, party):
    a, b = party(), party()
    existing = [join(b, create_collaboration(a, [member(b)], name=f"w{i}")["id"]) for i in range(40)]
    stop = threading.Event()
    errors = []

    def writer():
        writer_a = types.SimpleNamespace(id=a.id, client=server.client(a.account))
        writer_b = server.client(b.account)
        try:
            while not stop.is_set():
                c = create_collaboration(writer_a, [member(b)], name="new")
                writer_b.create_membership(collaborationIdentifier=c["id"], queryLogStatus="DISABLED")
        except Exception as exc:  # surfaced below
            errors.append(exc)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        seen = []
        for page in b.client.get_paginator("list_memberships").paginate(PaginationConfig={"PageSize": 3}):
            seen.extend(m["id"] for m in page["membershipSummaries"])
    finally:
        stop.set()
        thread.join()
    assert not errors, errors
    assert len(seen) == len(set(seen))
    assert {m["id"] for m in existing} <= set(seen)
