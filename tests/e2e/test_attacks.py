"""The cross-account attack matrix: every implemented operation, tried by every kind of outsider.

One world serves every case: the victim V creates collaboration T (members: W who joined, I invited, R removed,
L who left) and collaboration O-C (members: O who joined, W invited); V and W tag what they own. Attackers:

* ``non_member``    N, in nothing of V's;
* ``invitee``       I, invited to T, never joined;
* ``removed``       R, joined T, then removed by V (its membership is REMOVED);
* ``other_member``  O, active in O-C, not in T;
* ``left``          L, joined T, then left;
* ``co_member``     W, active in T and invited to O-C (for change requests: only V, the creator, proposes, cancels
                    and commits, W only votes on T's; and for configured tables).

Configured tables and their analysis rules belong to an account, not to a collaboration: V's (over V's own catalog,
with and without rules, tagged) are attacked by every other account, W included. W owns a configured table too.

Each attacker tries to read, change or delete what is not theirs with every operation. Each attempt must be
refused with the error docs/behaviour.md names (AccessDeniedException for collaborations and their change requests;
ResourceNotFoundException for memberships, tags, configured tables and their rules; ValidationException for someone
else's page token or catalog table; ConflictException for re-joining), must change nothing (V's and W's views are
compared before and after), and where AWS hides existence the refusal of an existing foreign resource must equal
that of a random unknown one (code, status and body, the identifier substituted). Every case compares the views
before and after its own attempts, so a case that changed something fails by itself, whatever ran before it (the
view after one case serves as the next case's view before: nothing is sent to the server between the two).
"""

from __future__ import annotations

import botocore

import uuid
from collections import Counter
from dataclasses import dataclass, field
from importlib import resources

import pytest

from opencleanrooms.catalog import commands as catalog_commands
from opencleanrooms.services.registry import load_all
from tests.support import wire
from tests.support.figures import figures  # noqa: F401  (fixture)
from tests.support.fuzzgen import IMPLEMENTED
from tests.support.rawapi import ApiError, RawClient
from tests.support.server import Account
from tests.support.views import diff

ROLES = ("non_member", "invitee", "removed", "other_member", "left")
ACCOUNT_ROLES = ROLES + ("co_member",)  # for account-level resources: any other account
_TALLY: Counter = Counter()
SAMPLES = resources.files("opencleanrooms.samples")
# V's catalog: the sample customers table, and a table under a name only V has.
VICTIM_CATALOG = (("advertiser", "customers"), ("victimdb", "ledger"))
CUSTOMER_COLUMNS = ["user_id", "email_hash", "segment", "age_band", "signup_date", "lifetime_value"]
SNOWFLAKE = {"snowflake": {
    "secretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:victim-AbCdEf",
    "accountIdentifier": "xy12345.us-east-1", "databaseName": "SALES", "schemaName": "PUBLIC", "tableName": "ORDERS",
    "tableSchema": {"v1": [{"columnName": "order_id", "columnType": "VARCHAR"},
                           {"columnName": "amount", "columnType": "NUMBER"}]}}}
POLICIES = {
    "AGGREGATION": {"v1": {"aggregation": {
        "aggregateColumns": [{"columnNames": ["lifetime_value"], "function": "SUM"}], "joinColumns": ["user_id"],
        "dimensionColumns": ["segment"], "scalarFunctions": ["ROUND"],
        "outputConstraints": [{"columnName": "user_id", "minimum": 10, "type": "COUNT_DISTINCT"}]}}},
    "LIST": {"v1": {"list": {"joinColumns": ["user_id"], "listColumns": ["segment", "age_band"]}}},
    "CUSTOM": {"v1": {"custom": {"allowedAnalyses": ["ANY_QUERY"], "allowedAnalysisProviders": ["444455556666"]}}},
}


def _unknown_id() -> str:
    return str(uuid.uuid4())


@dataclass
class World:
    server: object
    v: RawClient
    w: RawClient
    attackers: dict[str, RawClient]
    t: dict  # collaboration T
    oc: dict  # collaboration O-C
    memberships: dict[str, dict]  # "V/T", "V/OC", "W/T", "O/OC", "R/T"
    tokens: dict[str, str]  # V's page tokens
    change_requests: dict[str, dict]  # "T": V's pending request in T, "OC": V's in O-C
    tables: dict[str, dict] = field(default_factory=dict)  # configured tables, made by ensure_tables()
    rules: dict[str, str] = field(default_factory=dict)  # V's table key -> the type of its analysis rule
    query: dict | None = None  # V's protected query in T, its result for W; made by ensure_query()
    id_maps: dict = field(default_factory=dict)  # V's and W's ID namespace associations, V's ID mapping table
    # The victims' view after the last case, and what the world held then: the next case's view before, when no
    # ensure_*() has made anything since (no request reaches the server between the two, so they are equal).
    last_view: tuple | None = None

    def view_before(self) -> dict:
        key, (last_key, last) = self._view_key(), self.last_view or (None, None)
        self.last_view = None  # a case that ends without its view after leaves nothing to reuse
        return last if last_key == key else victim_view(self)

    def view_after(self) -> dict:
        view = victim_view(self)
        self.last_view = (self._view_key(), view)
        return view

    def _view_key(self) -> tuple:
        return tuple(t["id"] for t in self.tables.values()), bool(self.id_maps), self.query and self.query["id"]

    def ensure_id_mappings(self) -> None:
        """V's SOURCE and W's TARGET ID namespace associations in T, and V's ID mapping table over them (with the
        local Entity Resolution entries they resolve through), populated."""
        if self.id_maps:
            return
        from opencleanrooms.catalog import entity_resolution

        source = f"arn:aws:entityresolution:us-east-1:{self.v.id}:idnamespace/victim"
        target = f"arn:aws:entityresolution:us-east-1:{self.w.id}:idnamespace/w"
        workflow = f"arn:aws:entityresolution:us-east-1:{self.v.id}:idmappingworkflow/victim"
        for account in (self.v.id, self.w.id):
            catalog_commands.add_table(self.server.db, account_id=account, database="advertiser", table="customers",
                                       location=str(SAMPLES.joinpath("customers.parquet")))
        with self.server.db.write() as conn:
            for arn, kind in ((source, "SOURCE"), (target, "TARGET")):
                entity_resolution.put_namespace(conn, entity_resolution.make_namespace({
                    "arn": arn, "type": kind, "database": "advertiser", "table": "customers",
                    "id_column": "user_id", "key_columns": ["email_hash"]}))
            entity_resolution.put_workflow(conn, entity_resolution.make_workflow(
                {"arn": workflow, "source": source, "target": target}))
        for key, client, arn in (("V", self.v, source), ("W", self.w, target)):
            self.id_maps[key] = client("CreateIdNamespaceAssociation", membershipIdentifier=self.memberships[
                f"{key}/T"]["id"], name=f"{key} ids", inputReferenceConfig={
                "inputReferenceArn": arn, "manageResourcePolicies": True})["idNamespaceAssociation"]
        self.id_maps["table"] = self.v("CreateIdMappingTable", membershipIdentifier=self.memberships["V/T"]["id"],
                                       name="victim_map", inputReferenceConfig={
                                           "inputReferenceArn": workflow, "manageResourcePolicies": True},
                                       tags={"owner": "victim"})["idMappingTable"]
        self.v("PopulateIdMappingTable", membershipIdentifier=self.memberships["V/T"]["id"],
               idMappingTableIdentifier=self.id_maps["table"]["id"])

    def ensure_query(self) -> None:
        """A protected query V ran in T over its associated table, with W as receiver (it is refused by the
        table's rules, but exists for both V and W)."""
        self.ensure_tables()
        if self.query is None:
            self.query = self.v("StartProtectedQuery", membershipIdentifier=self.memberships["V/T"]["id"], type="SQL",
                                sqlParameters={"queryString": "SELECT SUM(lifetime_value) FROM victim_agg"},
                                resultConfiguration={"outputConfiguration": {"member": {"accountId": self.w.id}}}
                                )["protectedQuery"]

    def ensure_tables(self) -> None:
        """V's configured tables over its own catalog ("agg": AGGREGATION rule, tags, associated with T when
        associations are implemented; "plain": no rule; "snow": Snowflake, CUSTOM rule) and W's ("w"); made only for
        the cases that need them."""
        if self.tables:
            return
        for database, table in VICTIM_CATALOG:
            catalog_commands.add_table(self.server.db, account_id=self.v.id, database=database, table=table,
                                       location=str(SAMPLES.joinpath("customers.parquet")))
        glue = {"glue": {"databaseName": "advertiser", "tableName": "customers"}}
        made = {
            "agg": (self.v, glue, CUSTOMER_COLUMNS, "AGGREGATION", {"owner": "victim"}),
            "plain": (self.v, {"glue": {"databaseName": "victimdb", "tableName": "ledger"}}, CUSTOMER_COLUMNS, None,
                      {}),
            "snow": (self.v, SNOWFLAKE, ["order_id", "amount"], "CUSTOM", {}),
            "w": (self.w, SNOWFLAKE, ["order_id"], None, {"owner": "W"}),
        }
        for key, (owner, reference, columns, rule_type, tags) in made.items():
            self.tables[key] = owner("CreateConfiguredTable", name=f"{key} of {owner.id}", tableReference=reference,
                                     allowedColumns=columns, analysisMethod="DIRECT_QUERY", description="the victim's",
                                     tags=tags)["configuredTable"]
            if rule_type:
                owner("CreateConfiguredTableAnalysisRule", configuredTableIdentifier=self.tables[key]["id"],
                      analysisRuleType=rule_type, analysisRulePolicy=POLICIES[rule_type])
                self.rules[key] = rule_type
        if "CreateConfiguredTableAssociation" in IMPLEMENTED:
            # In use: for its owner, deleting the table (or its rule, while the association has one of its type)
            # is a ConflictException, which must not tell anyone else that the table exists.
            association = self.v("CreateConfiguredTableAssociation", membershipIdentifier=self.memberships["V/T"]["id"],
                                 configuredTableIdentifier=self.tables["agg"]["id"], name="victim_agg",
                                 roleArn="arn:aws:iam::123456789012:role/victim")["configuredTableAssociation"]
            self.v("CreateConfiguredTableAssociationAnalysisRule", membershipIdentifier=self.memberships["V/T"]["id"],
                   configuredTableAssociationIdentifier=association["id"], analysisRuleType="AGGREGATION",
                   analysisRulePolicy={"v1": {"aggregation": {"allowedResultReceivers": []}}})
        self.tokens["ListConfiguredTables"] = self.v("ListConfiguredTables", maxResults=1)["nextToken"]

    @property
    def victim_tables(self) -> list[dict]:
        return [self.tables[k] for k in ("agg", "plain", "snow")]

    def inside(self, role: str) -> dict | None:
        """The collaboration where the role's account has a member row (not as creator)."""
        return {"non_member": None, "other_member": self.oc}.get(role, self.t)

    def outside(self, role: str) -> dict:
        """A collaboration of the victim the role's account is not a member of."""
        return self.t if role in ("non_member", "other_member") else self.oc


def _member(client: RawClient, abilities=()) -> dict:
    return {"accountId": client.id, "memberAbilities": list(abilities), "displayName": f"member {client.id}"}


def _create(creator: RawClient, members, name: str, tags: dict) -> dict:
    return creator("CreateCollaboration", members=members, name=name, description="the victim's",
                   creatorMemberAbilities=["CAN_QUERY"], creatorDisplayName="victim", queryLogStatus="DISABLED",
                   tags=tags)["collaboration"]


def _join(client: RawClient, collaboration: dict, **extra) -> dict:
    return client("CreateMembership", collaborationIdentifier=collaboration["id"], queryLogStatus="DISABLED",
                  **extra)["membership"]


@pytest.fixture(scope="module")
def world(server) -> World:
    new = lambda: RawClient(server.port, server.new_account())  # noqa: E731
    v, w, n, i, r, o, left = (new() for _ in range(7))
    t = _create(v, [_member(w, ["CAN_RECEIVE_RESULTS"]), _member(i), _member(r), _member(left)], "target",
                {"owner": "victim", "env": "prod"})
    oc = _create(v, [_member(o), _member(w)], "other", {"owner": "victim-other"})
    results = {"outputConfiguration": {"s3": {"bucket": "w-results", "resultFormat": "CSV"}}}
    memberships = {"V/T": _join(v, t, tags={"who": "V"}),
                   "W/T": _join(w, t, tags={"who": "W"}, defaultResultConfiguration=results),
                   "V/OC": _join(v, oc), "O/OC": _join(o, oc, tags={"who": "O"}), "R/T": _join(r, t)}
    gone = _join(left, t)
    left("DeleteMembership", membershipIdentifier=gone["id"])
    v("DeleteMember", collaborationIdentifier=t["id"], accountId=r.id)
    tokens = {
        "ListCollaborations": v("ListCollaborations", maxResults=1)["nextToken"],
        "ListMemberships": v("ListMemberships", maxResults=1)["nextToken"],
        "ListMembers/T": v("ListMembers", collaborationIdentifier=t["id"], maxResults=1)["nextToken"],
        "ListMembers/OC": v("ListMembers", collaborationIdentifier=oc["id"], maxResults=1)["nextToken"],
    }
    change_requests = {"T": _propose(v, t, new().id), "OC": _propose(v, oc, new().id)}
    _propose(v, t, new().id)
    tokens["ListCollaborationChangeRequests/T"] = v("ListCollaborationChangeRequests", collaborationIdentifier=t["id"],
                                                    maxResults=1)["nextToken"]
    attackers = {"non_member": n, "invitee": i, "removed": r, "other_member": o, "left": left, "co_member": w}
    return World(server, v, w, attackers, t, oc, memberships, tokens, change_requests)


def _propose(creator: RawClient, collaboration: dict, account_id: str) -> dict:
    return creator("CreateCollaborationChangeRequest", collaborationIdentifier=collaboration["id"], changes=[
        _member_change(account_id)])["collaborationChangeRequest"]


def _member_change(account_id: str) -> dict:
    return {"specificationType": "MEMBER", "specification": {"member": {
        "accountId": account_id, "memberAbilities": ["CAN_RECEIVE_RESULTS"], "displayName": f"member {account_id}"}}}


def _read(call, *args, **kwargs):
    """A read's result, or the error it got (so that a successful attack shows up as a difference, not a crash)."""
    try:
        return call(*args, **kwargs)
    except ApiError as exc:
        return {"error": exc.code}


def victim_view(world: World) -> dict:
    """What V and W can see of this world's resources (lists filtered to them), through the API."""
    view = {}
    ids = {world.t["id"], world.oc["id"]}
    for name, client in (("V", world.v), ("W", world.w)):
        own = [m for k, m in world.memberships.items() if k.startswith(name + "/")]
        own_ids = {m["id"] for m in own}
        view[name] = {
            "collaborations": [c for c in client.pages("ListCollaborations", "collaborationList") if c["id"] in ids],
            "memberships": [m for m in client.pages("ListMemberships", "membershipSummaries") if m["id"] in own_ids],
            "get": {cid: _read(client, "GetCollaboration", collaborationIdentifier=cid) for cid in ids},
            "members": {cid: _read(client.pages, "ListMembers", "memberSummaries", collaborationIdentifier=cid)
                        for cid in ids},
            "membership": {m["id"]: _read(client, "GetMembership", membershipIdentifier=m["id"]) for m in own},
            "tags": {m["arn"]: _read(client, "ListTagsForResource", resourceArn=m["arn"]) for m in own},
            "change_requests": {cid: _read(client.pages, "ListCollaborationChangeRequests",
                                           "collaborationChangeRequestSummaries", collaborationIdentifier=cid)
                                for cid in ids},
            "change_request": {r["id"]: _read(client, "GetCollaborationChangeRequest",
                                              collaborationIdentifier=r["collaborationId"],
                                              changeRequestIdentifier=r["id"])
                               for r in world.change_requests.values()},
        }
        if world.tables:  # all of V's; W's that the world made (W makes its own as the co_member attacker)
            known = {t["id"] for t in world.tables.values()}
            tables = [t for t in client.pages("ListConfiguredTables", "configuredTableSummaries")
                      if name == "V" or t["id"] in known]
            view[name]["configured_tables"] = tables
            view[name]["configured_table"] = {}
            for t in tables:
                view[name]["configured_table"][t["id"]] = _read(client, "GetConfiguredTable",
                                                                configuredTableIdentifier=t["id"])
                view[name]["tags"][t["arn"]] = _read(client, "ListTagsForResource", resourceArn=t["arn"])
                for rule_type in t["analysisRuleTypes"]:  # a rule made or deleted shows in the list too
                    view[name][f"rule {t['id']} {rule_type}"] = _read(
                        client, "GetConfiguredTableAnalysisRule", configuredTableIdentifier=t["id"],
                        analysisRuleType=rule_type)
    for c in (world.t, world.oc):
        view["V"]["tags"][c["arn"]] = _read(world.v, "ListTagsForResource", resourceArn=c["arn"])
    if world.id_maps:
        for name, client in (("V", world.v), ("W", world.w)):
            mid = world.memberships[f"{name}/T"]["id"]
            association = world.id_maps[name]
            view[name]["id_namespace_associations"] = client.pages(
                "ListIdNamespaceAssociations", "idNamespaceAssociationSummaries", membershipIdentifier=mid)
            view[name]["id_namespace_association"] = _read(client, "GetIdNamespaceAssociation",
                                                           membershipIdentifier=mid,
                                                           idNamespaceAssociationIdentifier=association["id"])
            view[name]["collaboration_id_namespace_associations"] = client.pages(
                "ListCollaborationIdNamespaceAssociations", "collaborationIdNamespaceAssociationSummaries",
                collaborationIdentifier=world.t["id"])
            view[name]["id_mapping_tables"] = client.pages("ListIdMappingTables", "idMappingTableSummaries",
                                                           membershipIdentifier=mid)
            view[name]["id_mapping_schema"] = _read(client, "GetSchema", collaborationIdentifier=world.t["id"],
                                                    name="victim_map")
        view["V"]["id_mapping_table"] = _read(world.v, "GetIdMappingTable",
                                              membershipIdentifier=world.memberships["V/T"]["id"],
                                              idMappingTableIdentifier=world.id_maps["table"]["id"])
    if world.query is not None:
        for name, client, key in (("V", world.v, "V/T"), ("W", world.w, "W/T")):
            mid = world.memberships[key]["id"]
            view[name]["queries"] = client.pages("ListProtectedQueries", "protectedQueries", membershipIdentifier=mid)
            view[name]["query"] = _read(client, "GetProtectedQuery", membershipIdentifier=mid,
                                        protectedQueryIdentifier=world.query["id"])
    return view


# ---------------------------------------------------------------------------------------------- attempts


class Attempts:
    """Runs one (operation, role) case's attempts and keeps what went wrong."""

    def __init__(self, world: World, role: str) -> None:
        self.world, self.role = world, role
        self.attacker = world.attackers[role]
        self.count = 0
        self.problems: list[str] = []

    def refused(self, code: str, operation: str, params: dict, *, hide: str | None = None,
                unknown: dict | None = None, unknown_value: str | None = None,
                client: RawClient | None = None) -> None:
        """The call must fail with `code`. With `hide` (the foreign id or ARN in `params`) and `unknown` (the same
        params with a random id instead, `unknown_value`, by default the top-level value that differs), the
        refusal must be identical to the unknown one's, id substituted."""
        client = client or self.attacker
        self.count += 1
        reply = client.send(operation, **params)
        what = f"{self.role} {operation}({_short(params)})"
        if reply.error_type != code:
            self.problems.append(f"{what}: expected {code}, got {reply.describe()}")
            return
        if hide is None:
            return
        self.count += 1
        probe = client.send(operation, **unknown)
        unknown_id = unknown_value or next(v for k, v in unknown.items() if params.get(k) != v)
        seen = (reply.status, reply.error_type, reply.body.replace(hide.encode(), b"<ID>"))
        baseline = (probe.status, probe.error_type, probe.body.replace(unknown_id.encode(), b"<ID>"))
        if seen != baseline:
            self.problems.append(f"{what}: refusal reveals existence: {seen} vs unknown {baseline}")

    def collaboration(self, code: str, operation: str, collaboration: dict, **params) -> None:
        """A call on a victim's collaboration; existence is hidden from accounts that are not members of it."""
        member = collaboration is self.world.inside(self.role) or self.role == "co_member"  # W is in T and O-C
        random_id = _unknown_id()
        self.refused(code, operation, {"collaborationIdentifier": collaboration["id"], **params},
                     hide=None if member else collaboration["id"],
                     unknown=None if member else {"collaborationIdentifier": random_id, **params})

    def membership(self, operation: str, membership: dict, **params) -> None:
        self.refused("ResourceNotFoundException", operation, {"membershipIdentifier": membership["id"], **params},
                     hide=membership["id"], unknown={"membershipIdentifier": _unknown_id(), **params})

    def tags(self, operation: str, arn: str, **params) -> None:
        unknown = arn.rsplit("/", 1)[0] + "/" + _unknown_id()
        self.refused("ResourceNotFoundException", operation, {"resourceArn": arn, **params}, hide=arn,
                     unknown={"resourceArn": unknown, **params})

    def table(self, operation: str, table: dict, **params) -> None:
        """A call on someone else's configured table (or its rule) is refused exactly like one on an unknown id."""
        self.refused("ResourceNotFoundException", operation, {"configuredTableIdentifier": table["id"], **params},
                     hide=table["id"], unknown={"configuredTableIdentifier": _unknown_id(), **params})

    def token(self, operation: str, token: str, **params) -> None:
        """Someone else's page token is refused exactly like a garbage one."""
        garbage = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
        self.refused("ValidationException", operation, {**params, "nextToken": token}, hide=token,
                     unknown={**params, "nextToken": garbage})


def _short(params: dict) -> str:
    return ", ".join(f"{k}={str(v)[:60]}" for k, v in params.items())


def _victim_arns(world: World) -> list[str]:
    return [world.t["arn"], world.oc["arn"], world.memberships["V/T"]["arn"], world.memberships["W/T"]["arn"],
            world.memberships["V/OC"]["arn"]] + [t["arn"] for t in world.tables.values()]


def attack_create_collaboration(a: Attempts) -> None:
    world = a.world
    # A signature made with the victim's access key id but not its secret.
    forged = Account(world.v.id, world.v.account.access_key_id, a.attacker.account.secret_access_key)
    a.refused("InvalidSignatureException", "CreateCollaboration",
              {"members": [], "name": "forged", "creatorMemberAbilities": [], "creatorDisplayName": "forged",
               "queryLogStatus": "DISABLED"}, client=RawClient(world.server.port, forged))
    # Claiming the victim's identity in the request: ignored, the result is the caller's own.
    a.count += 1
    reply = wire.send(world.server.port, a.attacker.account, "POST", "/collaborations",
                      headers={"x-amz-account-id": world.v.id, "x-amzn-account-id": world.v.id},
                      body=_json({"members": [], "name": "spoof", "creatorMemberAbilities": [],
                                  "creatorDisplayName": "victim", "queryLogStatus": "DISABLED",
                                  "creatorAccountId": world.v.id, "accountId": world.v.id,
                                  "arn": world.t["arn"], "id": world.t["id"]}))
    created = reply.json().get("collaboration", {}) if reply.status == 200 else {}
    if reply.status != 200 or created.get("creatorAccountId") != a.attacker.id \
            or f":{a.attacker.id}:collaboration/" not in created.get("arn", "") or created.get("id") == world.t["id"]:
        a.problems.append(f"spoofed CreateCollaboration was not the caller's own: {reply.describe()}")


def attack_get_collaboration(a: Attempts) -> None:
    a.collaboration("AccessDeniedException", "GetCollaboration", a.world.outside(a.role))


def attack_update_collaboration(a: Attempts) -> None:
    for c in (a.world.t, a.world.oc):
        a.collaboration("AccessDeniedException", "UpdateCollaboration", c, name="pwned", description="pwned",
                        analyticsEngine="SPARK")


def attack_delete_collaboration(a: Attempts) -> None:
    for c in (a.world.t, a.world.oc):
        a.collaboration("AccessDeniedException", "DeleteCollaboration", c)


def attack_list_collaborations(a: Attempts) -> None:
    a.token("ListCollaborations", a.world.tokens["ListCollaborations"])
    a.token("ListCollaborations", a.world.tokens["ListCollaborations"], memberStatus="ACTIVE")
    a.count += 1
    seen = {c["id"] for c in a.attacker.pages("ListCollaborations", "collaborationList")}
    if a.world.outside(a.role)["id"] in seen:
        a.problems.append(f"{a.role} lists a collaboration it is not a member of")


def attack_list_members(a: Attempts) -> None:
    world = a.world
    a.collaboration("AccessDeniedException", "ListMembers", world.outside(a.role))
    if a.role in ("removed", "left"):  # former members can no longer list members
        a.collaboration("AccessDeniedException", "ListMembers", world.t)
    inside = world.inside(a.role)
    if inside is not None:
        key = "ListMembers/T" if inside is world.t else "ListMembers/OC"
        a.token("ListMembers", world.tokens[key], collaborationIdentifier=inside["id"])


def attack_delete_member(a: Attempts) -> None:
    world = a.world
    for c in (world.t, world.oc):
        a.collaboration("AccessDeniedException", "DeleteMember", c, accountId=world.w.id)
        a.collaboration("AccessDeniedException", "DeleteMember", c, accountId=world.v.id)


def attack_create_membership(a: Attempts) -> None:
    world = a.world
    a.collaboration("AccessDeniedException", "CreateMembership", world.outside(a.role), queryLogStatus="DISABLED")
    if a.role in ("removed", "left"):  # cannot re-join once out (docs/behaviour.md, Memberships)
        a.collaboration("ConflictException", "CreateMembership", world.t, queryLogStatus="DISABLED")


def attack_get_membership(a: Attempts) -> None:
    for key in ("V/T", "W/T", "V/OC"):
        a.membership("GetMembership", a.world.memberships[key])


def attack_update_membership(a: Attempts) -> None:
    for key in ("V/T", "W/T", "V/OC"):
        a.membership("UpdateMembership", a.world.memberships[key], queryLogStatus="ENABLED", jobLogStatus="ENABLED")


def attack_delete_membership(a: Attempts) -> None:
    for key in ("V/T", "W/T", "V/OC"):
        a.membership("DeleteMembership", a.world.memberships[key])


def attack_list_memberships(a: Attempts) -> None:
    a.token("ListMemberships", a.world.tokens["ListMemberships"])
    a.token("ListMemberships", a.world.tokens["ListMemberships"], status="ACTIVE")
    a.count += 1
    seen = {m["id"] for m in a.attacker.pages("ListMemberships", "membershipSummaries")}
    if seen & {m["id"] for k, m in a.world.memberships.items() if not k.startswith(("O/", "R/"))}:
        a.problems.append(f"{a.role} lists someone else's membership")


def attack_tag_resource(a: Attempts) -> None:
    for arn in _victim_arns(a.world):
        a.tags("TagResource", arn, tags={"owner": "attacker", "pwned": "yes"})


def attack_untag_resource(a: Attempts) -> None:
    for arn in _victim_arns(a.world):
        a.tags("UntagResource", arn, tagKeys=["owner", "who", "env"])


def attack_list_tags_for_resource(a: Attempts) -> None:
    for arn in _victim_arns(a.world):
        a.tags("ListTagsForResource", arn)


_ACTIONS = ("APPROVE", "DENY", "CANCEL", "COMMIT")


def _foreign_change_request(a: Attempts, operation: str, **params) -> None:
    """Through a collaboration the attacker is in, the victim's request of T is as unknown as a random id."""
    inside = a.world.inside(a.role)
    if inside is None or inside is a.world.t:
        return
    request = a.world.change_requests["T"]
    a.refused("ResourceNotFoundException", operation,
              {"collaborationIdentifier": inside["id"], "changeRequestIdentifier": request["id"], **params},
              hide=request["id"],
              unknown={"collaborationIdentifier": inside["id"], "changeRequestIdentifier": _unknown_id(), **params})


def attack_create_collaboration_change_request(a: Attempts) -> None:
    for c in (a.world.t, a.world.oc):  # only the creator proposes changes
        a.collaboration("AccessDeniedException", "CreateCollaborationChangeRequest", c,
                        changes=[_member_change(a.attacker.id)])


def _across(a: Attempts, operation: str, **params) -> None:
    """W, in both T and O-C: each collaboration's request named through the other is as unknown as a random id."""
    world = a.world
    for via, key in ((world.t, "OC"), (world.oc, "T")):
        request = world.change_requests[key]
        a.refused("ResourceNotFoundException", operation,
                  {"collaborationIdentifier": via["id"], "changeRequestIdentifier": request["id"], **params},
                  hide=request["id"],
                  unknown={"collaborationIdentifier": via["id"], "changeRequestIdentifier": _unknown_id(), **params})


def attack_get_collaboration_change_request(a: Attempts) -> None:
    world = a.world
    if a.role == "co_member":  # W reads the requests of both its collaborations, each through its own
        _across(a, "GetCollaborationChangeRequest")
        return
    outside = world.outside(a.role)
    key = "T" if outside is world.t else "OC"
    a.collaboration("AccessDeniedException", "GetCollaborationChangeRequest", outside,
                    changeRequestIdentifier=world.change_requests[key]["id"])
    if a.role in ("removed", "left"):  # former members no longer read them
        a.collaboration("AccessDeniedException", "GetCollaborationChangeRequest", world.t,
                        changeRequestIdentifier=world.change_requests["T"]["id"])
    _foreign_change_request(a, "GetCollaborationChangeRequest")


def attack_update_collaboration_change_request(a: Attempts) -> None:
    world = a.world
    for action in _ACTIONS:
        for key, c in (("T", world.t), ("OC", world.oc)):
            voter = (a.role, key) in (("other_member", "OC"), ("co_member", "T"))
            if voter and action in ("APPROVE", "DENY"):
                continue  # O (in O-C) and W (in T) were active when V proposed: voting is their right
            # The invitee and W in O-C (not asked to vote) and members that are not the creator are refused too.
            a.collaboration("AccessDeniedException", "UpdateCollaborationChangeRequest", c,
                            changeRequestIdentifier=world.change_requests[key]["id"], action=action)
        if a.role == "co_member":
            _across(a, "UpdateCollaborationChangeRequest", action=action)
        else:
            _foreign_change_request(a, "UpdateCollaborationChangeRequest", action=action)


def attack_list_collaboration_change_requests(a: Attempts) -> None:
    world = a.world
    if a.role != "co_member":  # W may list both its collaborations' requests
        a.collaboration("AccessDeniedException", "ListCollaborationChangeRequests", world.outside(a.role))
    if a.role in ("removed", "left"):
        a.collaboration("AccessDeniedException", "ListCollaborationChangeRequests", world.t)
    inside = world.inside(a.role)
    if inside is not None:
        a.token("ListCollaborationChangeRequests", world.tokens["ListCollaborationChangeRequests/T"],
                collaborationIdentifier=inside["id"])


# --------------------------------------------------------------------------- configured tables (account-level)


def attack_create_configured_table(a: Attempts) -> None:
    world = a.world
    base = {"name": "stolen", "allowedColumns": ["user_id"], "analysisMethod": "DIRECT_QUERY"}
    for database, table in VICTIM_CATALOG:  # V's catalog is V's: for anyone else the table does not exist
        other = "nx" + uuid.uuid4().hex[:12]
        reference = lambda name: {"glue": {"databaseName": database, "tableName": name}}  # noqa: E731
        a.refused("ValidationException", "CreateConfiguredTable", {**base, "tableReference": reference(table)},
                  hide=table, unknown={**base, "tableReference": reference(other)}, unknown_value=other)
    # Claiming the victim's identity and ids in the request: ignored, the table is the caller's own.
    victim = world.tables["agg"]
    a.count += 1
    reply = wire.send(world.server.port, a.attacker.account, "POST", "/configuredTables",
                      headers={"x-amz-account-id": world.v.id, "x-amzn-account-id": world.v.id},
                      body=_json({**base, "name": "spoof", "tableReference": SNOWFLAKE, "allowedColumns": ["amount"],
                                  "accountId": world.v.id, "arn": victim["arn"], "id": victim["id"],
                                  "configuredTableIdentifier": victim["id"]}))
    created = reply.json().get("configuredTable", {}) if reply.status == 200 else {}
    if reply.status != 200 or f":{a.attacker.id}:configuredtable/" not in created.get("arn", "") \
            or created.get("id") == victim["id"]:
        a.problems.append(f"spoofed CreateConfiguredTable was not the caller's own: {reply.describe()}")


def attack_get_configured_table(a: Attempts) -> None:
    for table in a.world.victim_tables:
        a.table("GetConfiguredTable", table)


def attack_update_configured_table(a: Attempts) -> None:
    for table in a.world.victim_tables:
        a.table("UpdateConfiguredTable", table, name="pwned", description="pwned", analysisMethod="DIRECT_JOB")
        a.table("UpdateConfiguredTable", table, allowedColumns=["user_id"],
                tableReference={"glue": {"databaseName": "victimdb", "tableName": "ledger"}})


def attack_delete_configured_table(a: Attempts) -> None:
    for table in a.world.victim_tables:
        a.table("DeleteConfiguredTable", table)


def attack_list_configured_tables(a: Attempts) -> None:
    a.token("ListConfiguredTables", a.world.tokens["ListConfiguredTables"])
    a.count += 1
    seen = {t["id"] for t in a.attacker.pages("ListConfiguredTables", "configuredTableSummaries")}
    if seen & {t["id"] for t in a.world.victim_tables}:
        a.problems.append(f"{a.role} lists someone else's configured table")


def attack_create_configured_table_analysis_rule(a: Attempts) -> None:
    tables = a.world.tables
    # A table without a rule (the create would succeed for its owner) and tables with one (for its owner a
    # ConflictException, which would tell that the table exists).
    for key, rule_type in (("plain", "LIST"), ("plain", "AGGREGATION"), ("agg", "AGGREGATION"), ("snow", "CUSTOM")):
        a.table("CreateConfiguredTableAnalysisRule", tables[key], analysisRuleType=rule_type,
                analysisRulePolicy=POLICIES[rule_type])


def attack_get_configured_table_analysis_rule(a: Attempts) -> None:
    for key in ("agg", "plain", "snow"):
        for rule_type in POLICIES:
            a.table("GetConfiguredTableAnalysisRule", a.world.tables[key], analysisRuleType=rule_type)


def attack_update_configured_table_analysis_rule(a: Attempts) -> None:
    tables, rules = a.world.tables, a.world.rules
    for key in ("agg", "snow"):
        policy = POLICIES["CUSTOM"] if rules[key] == "CUSTOM" else POLICIES["AGGREGATION"]
        a.table("UpdateConfiguredTableAnalysisRule", tables[key], analysisRuleType=rules[key],
                analysisRulePolicy=policy)
    a.table("UpdateConfiguredTableAnalysisRule", tables["plain"], analysisRuleType="LIST",
            analysisRulePolicy=POLICIES["LIST"])


def attack_delete_configured_table_analysis_rule(a: Attempts) -> None:
    for key in ("agg", "snow", "plain"):
        a.table("DeleteConfiguredTableAnalysisRule", a.world.tables[key],
                analysisRuleType=a.world.rules.get(key, "LIST"))


TABLE_ATTACKS = {
    "CreateConfiguredTable": attack_create_configured_table,
    "GetConfiguredTable": attack_get_configured_table,
    "UpdateConfiguredTable": attack_update_configured_table,
    "DeleteConfiguredTable": attack_delete_configured_table,
    "ListConfiguredTables": attack_list_configured_tables,
    "CreateConfiguredTableAnalysisRule": attack_create_configured_table_analysis_rule,
    "GetConfiguredTableAnalysisRule": attack_get_configured_table_analysis_rule,
    "UpdateConfiguredTableAnalysisRule": attack_update_configured_table_analysis_rule,
    "DeleteConfiguredTableAnalysisRule": attack_delete_configured_table_analysis_rule,
}
# Cases that need the configured tables built (tags: V's tables' ARNs are among the targets).
NEEDS_TABLES = set(TABLE_ATTACKS) | {"TagResource", "UntagResource", "ListTagsForResource"}


def _query_attempts(a: Attempts, operation: str, **params) -> None:
    """On the victims' memberships, as on unknown ones; and, from the attacker's own membership (if it has one),
    the victim's query is as unknown as a random id."""
    world = a.world
    for key in ("V/T", "W/T"):
        a.membership(operation, world.memberships[key], protectedQueryIdentifier=world.query["id"], **params)
    own = {"other_member": "O/OC", "removed": "R/T"}.get(a.role)
    if own:
        mid = world.memberships[own]["id"]
        a.refused("ResourceNotFoundException", operation, {"membershipIdentifier": mid,
                  "protectedQueryIdentifier": world.query["id"], **params}, hide=world.query["id"],
                  unknown={"membershipIdentifier": mid, "protectedQueryIdentifier": _unknown_id(), **params})


def attack_start_protected_query(a: Attempts) -> None:
    sql = {"queryString": "SELECT SUM(lifetime_value) FROM victim_agg"}
    for key in ("V/T", "W/T", "V/OC"):
        a.membership("StartProtectedQuery", a.world.memberships[key], type="SQL", sqlParameters=sql)
    if a.role == "removed":  # its own membership, REMOVED: no queries
        a.refused("AccessDeniedException", "StartProtectedQuery", {
            "membershipIdentifier": a.world.memberships["R/T"]["id"], "type": "SQL", "sqlParameters": sql})


def attack_get_protected_query(a: Attempts) -> None:
    _query_attempts(a, "GetProtectedQuery")


def attack_update_protected_query(a: Attempts) -> None:
    _query_attempts(a, "UpdateProtectedQuery", targetStatus="CANCELLED")


def attack_list_protected_queries(a: Attempts) -> None:
    for key in ("V/T", "W/T"):
        a.membership("ListProtectedQueries", a.world.memberships[key])
    own = {"other_member": "O/OC", "removed": "R/T"}.get(a.role)
    if own:
        a.count += 1
        seen = {q["id"] for q in a.attacker.pages("ListProtectedQueries", "protectedQueries",
                                                  membershipIdentifier=a.world.memberships[own]["id"])}
        if a.world.query["id"] in seen:
            a.problems.append(f"{a.role} lists the victim's protected query")


QUERY_ATTACKS = {
    "StartProtectedQuery": attack_start_protected_query,
    "GetProtectedQuery": attack_get_protected_query,
    "UpdateProtectedQuery": attack_update_protected_query,
    "ListProtectedQueries": attack_list_protected_queries,
}


def _own_membership(a: Attempts) -> str | None:
    """The attacker's own membership id, for the roles that have one (in O-C, or REMOVED in T)."""
    key = {"other_member": "O/OC", "removed": "R/T"}.get(a.role)
    return a.world.memberships[key]["id"] if key else None


def _id_map_attempts(a: Attempts, operation: str, id_field: str, targets, **params) -> None:
    """Through the victims' memberships, as through unknown ones; and, through the attacker's own membership, the
    victim's resource is as unknown as a random id."""
    world = a.world
    for key, resource in targets:
        a.membership(operation, world.memberships[key], **{id_field: resource["id"]}, **params)
    own = _own_membership(a)
    if own:
        for _, resource in targets:
            a.refused("ResourceNotFoundException", operation,
                      {"membershipIdentifier": own, id_field: resource["id"], **params}, hide=resource["id"],
                      unknown={"membershipIdentifier": own, id_field: _unknown_id(), **params})


def _associations(a: Attempts):
    return [("V/T", a.world.id_maps["V"]), ("W/T", a.world.id_maps["W"])]


def _mapping_table(a: Attempts):
    return [("V/T", a.world.id_maps["table"])]


def attack_create_id_namespace_association(a: Attempts) -> None:
    config = {"inputReferenceArn": f"arn:aws:entityresolution:us-east-1:{a.attacker.id}:idnamespace/attacker",
              "manageResourcePolicies": True}
    for key in ("V/T", "W/T", "V/OC"):
        a.membership("CreateIdNamespaceAssociation", a.world.memberships[key], name="pwned",
                     inputReferenceConfig=config)
    # the victim's own namespace, through the attacker's own membership: not the attacker's to associate
    victim = dict(config, inputReferenceArn=a.world.id_maps["V"]["inputReferenceConfig"]["inputReferenceArn"])
    own = _own_membership(a)
    if own:
        a.refused("ValidationException", "CreateIdNamespaceAssociation",
                  {"membershipIdentifier": own, "name": "pwned", "inputReferenceConfig": victim})


def attack_get_id_namespace_association(a: Attempts) -> None:
    _id_map_attempts(a, "GetIdNamespaceAssociation", "idNamespaceAssociationIdentifier", _associations(a))


def attack_update_id_namespace_association(a: Attempts) -> None:
    _id_map_attempts(a, "UpdateIdNamespaceAssociation", "idNamespaceAssociationIdentifier", _associations(a),
                     name="pwned", idMappingConfig={"allowUseAsDimensionColumn": True})


def attack_delete_id_namespace_association(a: Attempts) -> None:
    _id_map_attempts(a, "DeleteIdNamespaceAssociation", "idNamespaceAssociationIdentifier", _associations(a))


def attack_list_id_namespace_associations(a: Attempts) -> None:
    for key in ("V/T", "W/T"):
        a.membership("ListIdNamespaceAssociations", a.world.memberships[key])


def attack_get_collaboration_id_namespace_association(a: Attempts) -> None:
    targets = [a.world.outside(a.role)] + ([a.world.t] if a.role in ("removed", "left") else [])
    for c in targets:
        a.collaboration("AccessDeniedException", "GetCollaborationIdNamespaceAssociation", c,
                        idNamespaceAssociationIdentifier=a.world.id_maps["V"]["id"])


def attack_list_collaboration_id_namespace_associations(a: Attempts) -> None:
    targets = [a.world.outside(a.role)] + ([a.world.t] if a.role in ("removed", "left") else [])
    for c in targets:
        a.collaboration("AccessDeniedException", "ListCollaborationIdNamespaceAssociations", c)


def attack_create_id_mapping_table(a: Attempts) -> None:
    config = {"inputReferenceArn": f"arn:aws:entityresolution:us-east-1:{a.attacker.id}:idmappingworkflow/x",
              "manageResourcePolicies": True}
    for key in ("V/T", "W/T", "V/OC"):
        a.membership("CreateIdMappingTable", a.world.memberships[key], name="pwned", inputReferenceConfig=config)
    own = _own_membership(a)
    if own:  # the victim's workflow is not the attacker's
        victim = dict(config, inputReferenceArn=a.world.id_maps["table"]["inputReferenceConfig"]["inputReferenceArn"])
        a.refused("ValidationException", "CreateIdMappingTable",
                  {"membershipIdentifier": own, "name": "pwned", "inputReferenceConfig": victim})


def attack_get_id_mapping_table(a: Attempts) -> None:
    _id_map_attempts(a, "GetIdMappingTable", "idMappingTableIdentifier", _mapping_table(a))


def attack_update_id_mapping_table(a: Attempts) -> None:
    _id_map_attempts(a, "UpdateIdMappingTable", "idMappingTableIdentifier", _mapping_table(a), description="pwned")


def attack_delete_id_mapping_table(a: Attempts) -> None:
    _id_map_attempts(a, "DeleteIdMappingTable", "idMappingTableIdentifier", _mapping_table(a))


def attack_populate_id_mapping_table(a: Attempts) -> None:
    _id_map_attempts(a, "PopulateIdMappingTable", "idMappingTableIdentifier", _mapping_table(a), jobType="BATCH")


def attack_list_id_mapping_tables(a: Attempts) -> None:
    for key in ("V/T", "W/T"):
        a.membership("ListIdMappingTables", a.world.memberships[key])


ID_MAPPING_ATTACKS = {
    "CreateIdNamespaceAssociation": attack_create_id_namespace_association,
    "GetIdNamespaceAssociation": attack_get_id_namespace_association,
    "UpdateIdNamespaceAssociation": attack_update_id_namespace_association,
    "DeleteIdNamespaceAssociation": attack_delete_id_namespace_association,
    "ListIdNamespaceAssociations": attack_list_id_namespace_associations,
    "GetCollaborationIdNamespaceAssociation": attack_get_collaboration_id_namespace_association,
    "ListCollaborationIdNamespaceAssociations": attack_list_collaboration_id_namespace_associations,
    "CreateIdMappingTable": attack_create_id_mapping_table,
    "GetIdMappingTable": attack_get_id_mapping_table,
    "UpdateIdMappingTable": attack_update_id_mapping_table,
    "DeleteIdMappingTable": attack_delete_id_mapping_table,
    "ListIdMappingTables": attack_list_id_mapping_tables,
    "PopulateIdMappingTable": attack_populate_id_mapping_table,
}


ATTACKS = {
    **QUERY_ATTACKS,
    **ID_MAPPING_ATTACKS,
    "CreateCollaborationChangeRequest": attack_create_collaboration_change_request,
    "GetCollaborationChangeRequest": attack_get_collaboration_change_request,
    "UpdateCollaborationChangeRequest": attack_update_collaboration_change_request,
    "ListCollaborationChangeRequests": attack_list_collaboration_change_requests,
    "CreateCollaboration": attack_create_collaboration,
    "GetCollaboration": attack_get_collaboration,
    "UpdateCollaboration": attack_update_collaboration,
    "DeleteCollaboration": attack_delete_collaboration,
    "ListCollaborations": attack_list_collaborations,
    "ListMembers": attack_list_members,
    "DeleteMember": attack_delete_member,
    "CreateMembership": attack_create_membership,
    "GetMembership": attack_get_membership,
    "UpdateMembership": attack_update_membership,
    "DeleteMembership": attack_delete_membership,
    "ListMemberships": attack_list_memberships,
    "TagResource": attack_tag_resource,
    "UntagResource": attack_untag_resource,
    "ListTagsForResource": attack_list_tags_for_resource,
    **TABLE_ATTACKS,
}
CHANGE_REQUEST_ATTACKS = {name for name in ATTACKS if "ChangeRequest" in name}
# (operation, role) cases: account-level resources are attacked by every other account, the co-member W included;
# so are change requests (W is in T with V, but not its creator).
CASES = [(op, role) for op in sorted(ATTACKS)
         for role in (ACCOUNT_ROLES if op in TABLE_ATTACKS or op in CHANGE_REQUEST_ATTACKS else ROLES)]


def _json(value) -> bytes:
    import json

    return json.dumps(value).encode()


@pytest.fixture(scope="module")
def tally(figures):
    yield _TALLY
    if _TALLY:
        figures(f"attacks: {_TALLY['attempts']} attempts in {_TALLY['cases']} (operation, role) cases, "
                f"{_TALLY['refused_cases']} cases fully refused with no side effect")


# Families whose cross-account refusals are tested in their own end-to-end module (every operation, several roles)
# but not yet in this matrix: operation -> the test that attacks it. Move them into ATTACKS as entries are written.
_ASSOCIATION_TEST = "tests/e2e/test_table_associations.py::test_other_accounts_reach_no_association"
_SCHEMA_TEST = "tests/e2e/test_schemas.py::test_only_invited_and_active_members_read_schemas"
_TEMPLATE_TEST = "tests/e2e/test_analysis_templates.py::test_other_accounts_reach_no_template"
_JOB_TEST = "tests/e2e/test_protected_jobs.py::test_other_accounts_reach_no_job"  # jobs need S3 and a PySpark template
_PRIVACY_BUDGET_TEST = "tests/e2e/test_privacy_budgets.py::test_other_accounts_reach_no_privacy_budget"
_AUDIENCE_MODEL_TEST = "tests/e2e/test_audience_model_associations.py::test_other_accounts_reach_no_association"
_LOG_EXPORT_TEST = "tests/e2e/test_analysis_log_exports.py::test_other_accounts_reach_no_export"
_INTERMEDIATE_TABLE_TEST = "tests/e2e/test_intermediate_tables.py::test_access_from_every_role"
ATTACKED_ELSEWHERE = {
    **dict.fromkeys([
        "CreateConfiguredTableAssociation", "GetConfiguredTableAssociation", "UpdateConfiguredTableAssociation",
        "DeleteConfiguredTableAssociation", "ListConfiguredTableAssociations",
        "CreateConfiguredTableAssociationAnalysisRule", "GetConfiguredTableAssociationAnalysisRule",
        "UpdateConfiguredTableAssociationAnalysisRule", "DeleteConfiguredTableAssociationAnalysisRule"],
        _ASSOCIATION_TEST),
    **dict.fromkeys(["GetSchema", "ListSchemas", "BatchGetSchema", "GetSchemaAnalysisRule",
                     "BatchGetSchemaAnalysisRule"], _SCHEMA_TEST),
    **dict.fromkeys([
        "CreateAnalysisTemplate", "GetAnalysisTemplate", "UpdateAnalysisTemplate", "DeleteAnalysisTemplate",
        "ListAnalysisTemplates", "GetCollaborationAnalysisTemplate", "ListCollaborationAnalysisTemplates",
        "BatchGetCollaborationAnalysisTemplate"], _TEMPLATE_TEST),
    **dict.fromkeys([
        "CreatePrivacyBudgetTemplate", "GetPrivacyBudgetTemplate", "UpdatePrivacyBudgetTemplate",
        "DeletePrivacyBudgetTemplate", "ListPrivacyBudgetTemplates", "ListPrivacyBudgets", "PreviewPrivacyImpact",
        "GetCollaborationPrivacyBudgetTemplate", "ListCollaborationPrivacyBudgetTemplates",
        "ListCollaborationPrivacyBudgets"], _PRIVACY_BUDGET_TEST),
    **dict.fromkeys([
        "CreateConfiguredAudienceModelAssociation", "GetConfiguredAudienceModelAssociation",
        "UpdateConfiguredAudienceModelAssociation", "DeleteConfiguredAudienceModelAssociation",
        "ListConfiguredAudienceModelAssociations", "GetCollaborationConfiguredAudienceModelAssociation",
        "ListCollaborationConfiguredAudienceModelAssociations"], _AUDIENCE_MODEL_TEST),
    **dict.fromkeys(["StartAnalysisLogExport", "GetAnalysisLogExport", "ListAnalysisLogExports"], _LOG_EXPORT_TEST),
    **dict.fromkeys([
        "CreateIntermediateTable", "GetIntermediateTable", "UpdateIntermediateTable", "DeleteIntermediateTable",
        "ListIntermediateTables", "ListIntermediateTableVersions", "PopulateIntermediateTable",
        "DisallowIntermediateTable", "CreateIntermediateTableAnalysisRule", "GetIntermediateTableAnalysisRule",
        "UpdateIntermediateTableAnalysisRule", "DeleteIntermediateTableAnalysisRule"], _INTERMEDIATE_TABLE_TEST),
    **dict.fromkeys(["StartProtectedJob", "GetProtectedJob", "UpdateProtectedJob", "ListProtectedJobs"], _JOB_TEST),
}


def test_operations_attacked_elsewhere_name_real_tests_that_call_them():
    import importlib
    import inspect

    for operation, test in ATTACKED_ELSEWHERE.items():
        path, _, name = test.partition("::")
        module = importlib.import_module(path[:-3].replace("/", "."))
        assert callable(getattr(module, name, None)), f"{test} does not exist"
        assert botocore.xform_name(operation) in inspect.getsource(module), f"{path} never calls {operation}"


def test_the_matrix_covers_every_implemented_operation():
    """Every operation the server implements has attacks (here or in its family's module, see ATTACKED_ELSEWHERE),
    and every attack is of an implemented operation."""
    missing = sorted(set(IMPLEMENTED) - set(ATTACKS) - set(ATTACKED_ELSEWHERE))
    stale = sorted(set(ATTACKS) - set(IMPLEMENTED))
    problems = []
    if missing:
        by_family: dict[str, list[str]] = {}
        for name in missing:
            by_family.setdefault(load_all()[name].__module__.rsplit(".", 1)[-1], []).append(name)
        problems.append(f"{len(missing)} implemented operation(s) have no entry in ATTACKS (add attack_<name> "
                        "functions for them), by service module:\n" + "\n".join(
                            f"  {family}: {', '.join(names)}" for family, names in sorted(by_family.items())))
    if stale:
        problems.append(f"{len(stale)} entr(ies) of ATTACKS are not implemented operations: " + ", ".join(stale))
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("operation,role", CASES, ids=[f"{op}-{role}" for op, role in CASES])
def test_attack(world, tally, operation, role):
    if operation in NEEDS_TABLES:
        world.ensure_tables()
    if operation in QUERY_ATTACKS:
        world.ensure_query()
    if operation in ID_MAPPING_ATTACKS:
        world.ensure_id_mappings()
    before = world.view_before()
    attempts = Attempts(world, role)
    try:
        ATTACKS[operation](attempts)
    except ApiError as exc:  # an attack helper's own call failed: report it as a problem of this case
        attempts.problems.append(f"unexpected error: {exc}")
    after = world.view_after()
    tally["attempts"] += attempts.count
    tally["cases"] += 1
    changes = diff(before, after)
    assert attempts.count > 0
    assert not attempts.problems, "\n".join(attempts.problems)
    assert not changes, f"{role} {operation} changed the victims' data:\n" + "\n".join(changes)
    tally["refused_cases"] += 1
