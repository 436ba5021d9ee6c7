"""Everything one account can see, in one comparable value, to prove that others' calls changed nothing of it."""

from __future__ import annotations

from tests.support.builders import all_pages

LIVE_STATUSES = ("INVITED", "ACTIVE")


def snapshot(client, account_id: str) -> dict:
    """Lists, every collaboration and membership the account can Get, every member list it can read, and the
    tags of what it owns: all of it through the API, as the account sees it."""
    collaborations = all_pages(client, "list_collaborations", "collaborationList")
    memberships = all_pages(client, "list_memberships", "membershipSummaries")
    view = {"collaborations": collaborations, "memberships": memberships, "collaboration": {}, "members": {},
            "membership": {}, "tags": {}}
    for c in collaborations:
        view["collaboration"][c["id"]] = client.get_collaboration(collaborationIdentifier=c["id"])["collaboration"]
        if c["memberStatus"] in LIVE_STATUSES:
            view["members"][c["id"]] = all_pages(client, "list_members", "memberSummaries",
                                                 collaborationIdentifier=c["id"])
        if c["creatorAccountId"] == account_id:
            view["tags"][c["arn"]] = client.list_tags_for_resource(resourceArn=c["arn"])["tags"]
    for m in memberships:
        view["membership"][m["id"]] = client.get_membership(membershipIdentifier=m["id"])["membership"]
        view["tags"][m["arn"]] = client.list_tags_for_resource(resourceArn=m["arn"])["tags"]
    return view


def without_member(view: dict, account_id: str, collaboration_ids) -> tuple[dict, dict]:
    """(the view with `account_id`'s rows removed from these collaborations' member lists, those rows by id)."""
    removed = {}
    members = dict(view["members"])
    for cid in collaboration_ids:
        rows = members.get(cid, [])
        removed[cid] = [r for r in rows if r["accountId"] == account_id]
        members[cid] = [r for r in rows if r["accountId"] != account_id]
    return {**view, "members": members}, removed


def diff(before, after, path: str = "$", out: list | None = None, limit: int = 20) -> list[str]:
    """Human-readable differences between two snapshots (at most `limit`)."""
    out = [] if out is None else out
    if len(out) >= limit:
        return out
    if isinstance(before, dict) and isinstance(after, dict):
        for key in sorted(set(before) | set(after), key=str):
            if key not in after:
                out.append(f"{path}.{key}: removed (was {str(before[key])[:200]})")
            elif key not in before:
                out.append(f"{path}.{key}: added ({str(after[key])[:200]})")
            else:
                diff(before[key], after[key], f"{path}.{key}", out, limit)
    elif isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        for i, (b, a) in enumerate(zip(before, after)):
            diff(b, a, f"{path}[{i}]", out, limit)
    elif before != after:
        out.append(f"{path}: {str(before)[:200]} -> {str(after)[:200]}")
    return out
