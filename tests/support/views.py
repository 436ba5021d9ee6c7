"""Everything one account can see, in one comparable value, to prove that others' calls changed nothing of it."""

from __future__ import annotations

from tests.support.builders import all_pages

LIVE_STATUSES = ("INVITED", "ACTIVE")


def snapshot(client, account_id: str) -> dict:
    """Lists, every collaboration and membership the account can Get, every member list and change request it can
    read, its configured tables with their analysis rules, and the tags of what it owns: all of it through the
    API, as the account sees it."""
    collaborations = all_pages(client, "list_collaborations", "collaborationList")
    memberships = all_pages(client, "list_memberships", "membershipSummaries")
    view = {"collaborations": collaborations, "memberships": memberships, "collaboration": {}, "members": {},
            "membership": {}, "tags": {}, "change_requests": {}, "change_request": {}}
    for c in collaborations:
        view["collaboration"][c["id"]] = client.get_collaboration(collaborationIdentifier=c["id"])["collaboration"]
        if c["memberStatus"] in LIVE_STATUSES:
            view["members"][c["id"]] = all_pages(client, "list_members", "memberSummaries",
                                                 collaborationIdentifier=c["id"])
            requests = all_pages(client, "list_collaboration_change_requests", "collaborationChangeRequestSummaries",
                                 collaborationIdentifier=c["id"])
            view["change_requests"][c["id"]] = requests
            for r in requests:
                view["change_request"][r["id"]] = client.get_collaboration_change_request(
                    collaborationIdentifier=c["id"], changeRequestIdentifier=r["id"])["collaborationChangeRequest"]
        if c["creatorAccountId"] == account_id:
            view["tags"][c["arn"]] = client.list_tags_for_resource(resourceArn=c["arn"])["tags"]
    for m in memberships:
        view["membership"][m["id"]] = client.get_membership(membershipIdentifier=m["id"])["membership"]
        view["tags"][m["arn"]] = client.list_tags_for_resource(resourceArn=m["arn"])["tags"]
    view.update(configured_tables(client))
    for t in view["configured_tables"]:
        view["tags"][t["arn"]] = client.list_tags_for_resource(resourceArn=t["arn"])["tags"]
    return view


def configured_tables(client) -> dict:
    """The account's configured tables: the list, each table, and each table's analysis rule."""
    tables = all_pages(client, "list_configured_tables", "configuredTableSummaries")
    view = {"configured_tables": tables, "configured_table": {}, "analysis_rule": {}}
    for t in tables:
        view["configured_table"][t["id"]] = client.get_configured_table(
            configuredTableIdentifier=t["id"])["configuredTable"]
        for rule_type in t["analysisRuleTypes"]:
            view["analysis_rule"][f"{t['id']}/{rule_type}"] = client.get_configured_table_analysis_rule(
                configuredTableIdentifier=t["id"], analysisRuleType=rule_type)["analysisRule"]
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


def without_votes(view: dict, account_id: str, collaboration_ids) -> tuple[dict, dict]:
    """(the view with `account_id`'s votes on these collaborations' change requests, and what follows from them
    (the request's status and updateTime), blanked out; those requests as they were, by id).

    A member asked to approve a change request may APPROVE or DENY it: that changes its vote, the request's
    status and its updateTime, and nothing else."""
    voted = {}

    def blank(request: dict) -> dict:
        if request.get("collaborationId") not in collaboration_ids or account_id not in request.get("approvals", {}):
            return request
        voted[request["id"]] = request
        approvals = {**request["approvals"], account_id: "<vote>"}
        return {**request, "approvals": approvals, "status": "<status>", "updateTime": "<time>"}

    lists = {cid: [blank(r) for r in requests] for cid, requests in view["change_requests"].items()}
    single = {rid: blank(r) for rid, r in view["change_request"].items()}
    return {**view, "change_requests": lists, "change_request": single}, voted


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
