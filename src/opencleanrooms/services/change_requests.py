"""Collaboration change requests: the creator proposes member and collaboration changes, members vote, the creator
commits.

A request's changes are checked against the collaboration when it is created and again when it is committed (the
collaboration may have changed in between). Each change's `types` are derived from its specification and the
current members: inviting an account is ADD_MEMBER (plus GRANT_RECEIVE_RESULTS_ABILITY when it is to receive
results, GRANT_EXPORT_QUERY_ANALYSIS_LOG_ABILITY when it is to export analysis logs), changing an existing member's
CAN_RECEIVE_RESULTS is GRANT_/REVOKE_RECEIVE_RESULTS_ABILITY and its CAN_EXPORT_QUERY_ANALYSIS_LOG
GRANT_/REVOKE_EXPORT_QUERY_ANALYSIS_LOG_ABILITY, and a collaboration specification is
EDIT_AUTO_APPROVED_CHANGE_TYPES. A request whose every type is in the collaboration's
`autoApprovedChangeTypes` takes effect at once (COMMITTED); otherwise every other ACTIVE member must approve it.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa

from opencleanrooms.errors import ServiceError
from opencleanrooms.services import arns, errors, locks, payment, summaries
from opencleanrooms.services.access import PARTICIPANT_STATUSES, creator_view, member_view
from opencleanrooms.services.context import RequestContext
from opencleanrooms.services.pagination import list_page
from opencleanrooms.services.registry import operation
from opencleanrooms.storage import change_requests as store
from opencleanrooms.storage import collaborations as collaboration_store
from opencleanrooms.storage.database import DuplicateError

RECEIVE = "CAN_RECEIVE_RESULTS"
UNSUPPORTED_ABILITIES = ("CAN_QUERY", "CAN_RUN_JOB")
ADD_MEMBER = "ADD_MEMBER"
GRANT = "GRANT_RECEIVE_RESULTS_ABILITY"
REVOKE = "REVOKE_RECEIVE_RESULTS_ABILITY"
EXPORT = "CAN_EXPORT_QUERY_ANALYSIS_LOG"
# The abilities change requests grant and revoke: ability -> (grant type, revoke type).
CHANGEABLE = {RECEIVE: (GRANT, REVOKE),
              EXPORT: ("GRANT_EXPORT_QUERY_ANALYSIS_LOG_ABILITY", "REVOKE_EXPORT_QUERY_ANALYSIS_LOG_ABILITY")}
EDIT_AUTO_APPROVED = "EDIT_AUTO_APPROVED_CHANGE_TYPES"
_SPEC_KEY = {"MEMBER": "member", "COLLABORATION": "collaboration"}

# fail(message, field, reason) -> the error to raise for a change that cannot be made
Fail = Callable[[str, str, str], ServiceError]


@operation("CreateCollaborationChangeRequest")
def create_change_request(ctx: RequestContext, params: dict) -> dict:
    collaboration_id = params["collaborationIdentifier"]
    try:
        return _create(ctx, params, collaboration_id)
    except DuplicateError:  # another request invited the same account at the same moment
        raise errors.conflict("The collaboration's members changed while the change request was being made; "
                              "retry.", collaboration_id, "COLLABORATION", "INVALID_STATE") from None


def _create(ctx: RequestContext, params: dict, collaboration_id: str) -> dict:
    with ctx.db.write(locks=[locks.collaboration(collaboration_id)]) as conn:
        collaboration, _ = creator_view(conn, ctx, collaboration_id)
        members = _members(conn, collaboration_id)
        changes = _plan(collaboration, members, params["changes"], _invalid)
        _check_member_quota(ctx, collaboration, members, changes)

        creator = collaboration["creator_account_id"]
        types = {t for change in changes for t in change["types"]}
        auto_approved = types <= set(collaboration["doc"].get("autoApprovedChangeTypes") or ())
        approvals = {creator: {"status": "APPROVED"}}  # the creator's own request counts as its approval
        if auto_approved:
            status = "COMMITTED"
            _apply(conn, ctx, collaboration, members, changes)
        else:
            approvals.update((account, {"status": "PENDING"}) for account, m in members.items()
                             if m["status"] == "ACTIVE" and account != creator)
            status = _tally(approvals)
        row = {
            "id": arns.new_id(),
            "collaboration_id": collaboration_id,
            "status": status,
            "create_time": ctx.now,
            "update_time": ctx.now,
            "doc": {"isAutoApproved": auto_approved, "changes": changes, "approvals": approvals},
        }
        store.insert(conn, row)
    return {"collaborationChangeRequest": change_request_view(row)}


@operation("GetCollaborationChangeRequest")
def get_change_request(ctx: RequestContext, params: dict) -> dict:
    with ctx.db.read() as conn:
        member_view(conn, ctx, params["collaborationIdentifier"], PARTICIPANT_STATUSES)
        row = _get(conn, params)
    return {"collaborationChangeRequest": change_request_view(row)}


@operation("UpdateCollaborationChangeRequest")
def update_change_request(ctx: RequestContext, params: dict) -> dict:
    try:
        return _update(ctx, params)
    except DuplicateError:  # another request invited the same account at the same moment
        raise _invalid_state(params["changeRequestIdentifier"], "The collaboration's members changed while the "
                             "change request was being committed; it can no longer be committed.") from None


def _update(ctx: RequestContext, params: dict) -> dict:
    collaboration_id, action = params["collaborationIdentifier"], params["action"]
    with ctx.db.write(locks=[locks.collaboration(collaboration_id)]) as conn:
        collaboration, _ = member_view(conn, ctx, collaboration_id, PARTICIPANT_STATUSES)
        row = _get(conn, params, for_update=True)
        change_request_id, status = row["id"], row["status"]
        doc = dict(row["doc"])
        is_creator = collaboration["creator_account_id"] == ctx.account_id
        if action in ("APPROVE", "DENY"):
            if is_creator:
                raise errors.access_denied(f"The collaboration creator cannot {action} a change request; its own "
                                           "requests count as approved, and it can CANCEL or COMMIT them.")
            approvals = {account: dict(vote) for account, vote in doc["approvals"].items()}
            if ctx.account_id not in approvals:
                raise errors.access_denied(f"Account {ctx.account_id} is not an approver of change request "
                                           f"{change_request_id}; only the members that were ACTIVE when it was "
                                           "created vote on it.")
            if status != "PENDING":
                raise _invalid_state(change_request_id, f"Change request {change_request_id} is {status}; only a "
                                     f"PENDING change request can be {_PAST[action]}.")
            if approvals[ctx.account_id]["status"] != "PENDING":
                raise _invalid_state(change_request_id, f"Account {ctx.account_id} has already "
                                     f"{approvals[ctx.account_id]['status']} change request {change_request_id}.")
            approvals[ctx.account_id]["status"] = "APPROVED" if action == "APPROVE" else "DENIED"
            doc["approvals"] = approvals
            status = _tally(approvals)
        else:
            if not is_creator:
                raise errors.access_denied(f"Only the creator of collaboration {collaboration_id} can {action} a "
                                           "change request.")
            allowed = ("PENDING", "APPROVED") if action == "CANCEL" else ("APPROVED",)
            if status not in allowed:
                raise _invalid_state(change_request_id, f"Change request {change_request_id} is {status}; only "
                                     f"{' or '.join(allowed)} change requests can be {_PAST[action]}.")
            if action == "COMMIT":
                members = _members(conn, collaboration_id)
                stale = _stale(change_request_id)
                changes = _plan(collaboration, members, doc["changes"], stale)
                if [c["types"] for c in changes] != [c["types"] for c in doc["changes"]]:
                    raise stale("the collaboration's members changed since it was created", "changes", "")
                try:
                    _check_member_quota(ctx, collaboration, members, changes)
                except ServiceError as exc:
                    raise stale(exc.message, "changes", "") from None
                _apply(conn, ctx, collaboration, members, changes)
                status = "COMMITTED"
            else:
                status = "CANCELLED"
        store.update(conn, change_request_id, status=status, doc=doc, update_time=ctx.now)
        row = store.get(conn, collaboration_id, change_request_id)
    return {"collaborationChangeRequest": change_request_view(row)}


@operation("ListCollaborationChangeRequests")
def list_change_requests(ctx: RequestContext, params: dict) -> dict:
    collaboration_id, status = params["collaborationIdentifier"], params.get("status")

    def fetch(conn, after, limit):
        member_view(conn, ctx, collaboration_id, PARTICIPANT_STATUSES)
        return store.page_for_collaboration(conn, collaboration_id, status, after, limit)

    return list_page(ctx, params, "collaborationChangeRequestSummaries", (collaboration_id, status), fetch,
                     change_request_view)


def change_request_view(row) -> dict:
    """CollaborationChangeRequest (and its summary, which has the same members)."""
    doc = row["doc"]
    view = {
        "id": row["id"],
        "collaborationId": row["collaboration_id"],
        "createTime": row["create_time"],
        "updateTime": row["update_time"],
        "status": row["status"],
        "isAutoApproved": doc["isAutoApproved"],
        "changes": doc["changes"],
    }
    if doc.get("approvals"):
        view["approvals"] = doc["approvals"]
    return view


_PAST = {"APPROVE": "approved", "DENY": "denied", "CANCEL": "cancelled", "COMMIT": "committed"}


def _get(conn: sa.Connection, params: dict, *, for_update: bool = False):
    """The change request in this collaboration; one of another collaboration is as unknown as a missing one."""
    change_request_id = params["changeRequestIdentifier"]
    row = store.get(conn, params["collaborationIdentifier"], change_request_id, for_update=for_update)
    if row is None:
        raise errors.not_found(f"Change request {change_request_id} not found in collaboration "
                               f"{params['collaborationIdentifier']}.", change_request_id, "COLLABORATION")
    return row


def _members(conn: sa.Connection, collaboration_id: str) -> dict:
    return {m["account_id"]: m for m in collaboration_store.members_of(conn, collaboration_id)}


def _tally(approvals: dict) -> str:
    votes = [vote["status"] for vote in approvals.values()]
    if "DENIED" in votes:
        return "DENIED"
    return "APPROVED" if all(vote == "APPROVED" for vote in votes) else "PENDING"


def _invalid(message: str, field: str, reason: str = "FIELD_VALIDATION_FAILED") -> ServiceError:
    return errors.validation(message, reason=reason, field=field)


def _stale(change_request_id: str) -> Fail:
    def fail(message: str, field: str, reason: str = "") -> ServiceError:
        return _invalid_state(change_request_id, f"Change request {change_request_id} can no longer be committed: "
                                                 f"{message}")
    return fail


def _invalid_state(change_request_id: str, message: str) -> ServiceError:
    return errors.conflict(message, change_request_id, "COLLABORATION", "INVALID_STATE")


def _plan(collaboration, members: dict, changes: list[dict], fail: Fail) -> list[dict]:
    """The changes as the output shows them (with their derived `types`); raises `fail(...)` for any that cannot
    be made to the collaboration as it is now."""
    planned, seen_accounts, seen_collaboration = [], set(), False
    for i, change in enumerate(changes, 1):
        at = f"changes.{i}.member"
        specification_type, specification = change["specificationType"], change["specification"]
        key = _SPEC_KEY[specification_type]
        if key not in specification:
            given = next(iter(specification), "none")
            raise fail(f"specificationType {specification_type} requires specification.{key}, but "
                       f"specification.{given} was given.", f"{at}.specificationType", "FIELD_VALIDATION_FAILED")
        if key == "member":
            types = _member_types(members, specification["member"], seen_accounts, f"{at}.specification.member",
                                  fail)
        else:
            if seen_collaboration:
                raise fail("A change request may hold at most one COLLABORATION change.", f"{at}.specificationType",
                           "FIELD_VALIDATION_FAILED")
            seen_collaboration = True
            types = _collaboration_types(collaboration, specification["collaboration"],
                                         f"{at}.specification.collaboration", fail)
        planned.append({"specificationType": specification_type, "specification": specification, "types": types})
    return planned


def _member_types(members: dict, spec: dict, seen: set, at: str, fail: Fail) -> list[str]:
    account, abilities = spec["accountId"], spec["memberAbilities"]
    unsupported = [a for a in abilities if a in UNSUPPORTED_ABILITIES]
    if unsupported:
        raise fail(f"memberAbilities {unsupported[0]} is not supported in change requests; use [] (contribute data) "
                   f"or [{RECEIVE}].", f"{at}.memberAbilities", "FIELD_VALIDATION_FAILED")
    if "mlMemberAbilities" in spec:
        raise fail("mlMemberAbilities cannot be changed by change requests on this server.",
                   f"{at}.mlMemberAbilities", "FIELD_VALIDATION_FAILED")
    if account in seen:
        raise fail(f"Account {account} appears in more than one change of this request.", f"{at}.accountId",
                   "FIELD_VALIDATION_FAILED")
    seen.add(account)
    existing = members.get(account)
    if existing is None:
        if "displayName" not in spec:
            raise fail(f"displayName is required to invite account {account}.", f"{at}.displayName",
                       "FIELD_VALIDATION_FAILED")
        _check_payment(spec, new_member_payment(members), abilities, fail, at)
        return [ADD_MEMBER] + [grant for ability, (grant, _) in CHANGEABLE.items() if ability in abilities]
    if existing["status"] not in PARTICIPANT_STATUSES:
        raise fail(f"Account {account} is {existing['status']} in this collaboration and cannot be invited again.",
                   f"{at}.accountId", "INVALID_CONFIGURATION")
    if "displayName" in spec and spec["displayName"] != existing["display_name"]:
        raise fail(f"The display name of member {account} cannot be changed.", f"{at}.displayName",
                   "FIELD_VALIDATION_FAILED")
    _check_payment(spec, existing["doc"]["paymentConfiguration"], abilities, fail, at)
    has = existing["doc"]["abilities"]
    types = [grant if ability in abilities else revoke for ability, (grant, revoke) in CHANGEABLE.items()
             if (ability in abilities) != (ability in has)]
    if not types:
        raise fail(f"Member {account} already has these abilities; the change would change nothing.",
                   f"{at}.memberAbilities", "INVALID_CONFIGURATION")
    return types


def _check_payment(spec: dict, effective: dict, abilities: list[str], fail: Fail, at: str) -> None:
    """Who pays cannot be changed here: a given paymentConfiguration must state the member's current one."""
    try:
        payment.check_acceptance(effective, spec.get("paymentConfiguration"), abilities, required=False)
    except ServiceError as exc:
        raise fail(f"{exc.message} Payment responsibilities cannot be changed by change requests on this server.",
                   f"{at}.paymentConfiguration", "INVALID_CONFIGURATION") from None


def _collaboration_types(collaboration, spec: dict, at: str, fail: Fail) -> list[str]:
    if "autoApprovedChangeTypes" not in spec:
        raise fail("autoApprovedChangeTypes is required in a COLLABORATION change (use [] to auto-approve nothing).",
                   f"{at}.autoApprovedChangeTypes", "FIELD_VALIDATION_FAILED")
    wanted = spec["autoApprovedChangeTypes"]
    if len(set(wanted)) != len(wanted):
        raise fail("autoApprovedChangeTypes lists a change type more than once.", f"{at}.autoApprovedChangeTypes",
                   "FIELD_VALIDATION_FAILED")
    if set(wanted) == set(collaboration["doc"].get("autoApprovedChangeTypes") or ()):
        raise fail("The collaboration already auto-approves exactly these change types; the change would change "
                   "nothing.", f"{at}.autoApprovedChangeTypes", "INVALID_CONFIGURATION")
    return [EDIT_AUTO_APPROVED]


def _check_member_quota(ctx: RequestContext, collaboration, members: dict, changes: list[dict]) -> None:
    added = sum(ADD_MEMBER in change["types"] for change in changes)
    if added:
        current = sum(1 for account, m in members.items()
                      if m["status"] in PARTICIPANT_STATUSES and account != collaboration["creator_account_id"])
        ctx.quotas.check("members", current + added)


def new_member_payment(members: dict) -> dict:
    """A member invited by a change request pays for nothing; its configuration names the same cost types as the
    other members' do."""
    template = next((m["doc"]["paymentConfiguration"] for m in members.values()), {"queryCompute": {}})
    return _nothing(template)


def _nothing(config: dict) -> dict:
    return {key: ({"isResponsible": False} if "isResponsible" in value or not value else _nothing(value))
            for key, value in config.items()}


def _apply(conn: sa.Connection, ctx: RequestContext, collaboration, members: dict, changes: list[dict]) -> None:
    """Make the changes, in the caller's transaction, and refresh the collaboration's list summaries."""
    collaboration_id = collaboration["id"]
    for change in changes:
        if change["specificationType"] == "COLLABORATION":
            doc = dict(collaboration["doc"])
            doc["autoApprovedChangeTypes"] = list(change["specification"]["collaboration"]["autoApprovedChangeTypes"])
            collaboration_store.update(conn, collaboration_id, doc=doc, update_time=ctx.now)
            continue
        spec = change["specification"]["member"]
        account = spec["accountId"]
        if ADD_MEMBER in change["types"]:
            abilities = [a for a in CHANGEABLE if a in spec["memberAbilities"]]
            collaboration_store.add_member(conn, collaboration_id, {
                "region": collaboration["region"],
                "account_id": account,
                "status": "INVITED",
                "listed": True,
                "display_name": spec["displayName"],
                "membership_id": None,
                "create_time": ctx.now,
                "update_time": ctx.now,
                "doc": {"abilities": abilities, "paymentConfiguration": new_member_payment(members)},
            })
        else:
            doc = dict(members[account]["doc"])
            kept = [a for a in doc["abilities"] if a not in CHANGEABLE]  # CAN_QUERY, CAN_RUN_JOB stay as they are
            doc["abilities"] = kept + [a for a in CHANGEABLE if a in spec["memberAbilities"]]
            collaboration_store.update_member(conn, collaboration_id, account, doc=doc, update_time=ctx.now)
    summaries.refresh(conn, collaboration_id)
