"""Requests generated from the botocore model: valid ones, and hostile mutations of them.

Everything is driven by the operation's input shape (types, required members, min/max, patterns, enums, unions,
where each member goes on the wire). Valid values point at real resources some of the time (``Pools``), and each
generated request carries what the test may expect of it without knowing the server's code:

* ``expect == "reject"``: the request is certainly invalid (a model constraint is broken, a documented rule is
  broken, or it targets something the caller cannot see), so it must not succeed;
* ``expect == "ok"``: certainly valid and aimed at the caller's own live resource, so it must succeed;
* ``expect is None``: either outcome may be right; only the generic checks (no 5xx, model conformance) apply.

A seeded ``random.Random`` drives everything, so a seed reproduces a run (given the same pool contents).
"""

from __future__ import annotations

import json
import random
import re
import string
import uuid
from dataclasses import dataclass, field
from urllib.parse import quote, unquote

import botocore.model

from opencleanrooms.protocol.model import load_service_model
from opencleanrooms.services.registry import load_all

MODEL = load_service_model()
IMPLEMENTED = tuple(sorted(load_all()))
REGION = "us-east-1"
ACCOUNT_RE = re.compile(r"\d{12}")
RESERVED_TAG_PREFIX = "aws:"
MAX_TAGS_PER_RESOURCE = 50  # docs/behaviour.md: a resource holds at most 50 tags
MAX_JSON_DEPTH = 64  # docs/behaviour.md: deeper bodies are SerializationException

_ASCII = string.ascii_letters + string.digits + " -_.,:;!@#$%^&*()[]{}<>?/\\|'\"`~+="
_UNICODE = "éßЖж中文日本語한국어عربيעברית\u200b\u200e\u202e\u00a0\ufeff\uffef\u2028\u2029ǅ…\ufffd\u0301"
# Strings the model may or may not accept: the generic checks still apply to whatever the server answers.
HOSTILE_STRINGS = (
    "\ud800", "\udfff", "a\ud800b", "\udbff\udc00", "😀", "x😀" * 30, "\x00", "a\x00b", "\x01\x7f\x1b[31m",
    "\u202eevil", "e\u0301" * 60, "\uffff", "\ufffe", "\r\n", "\t", " ", "   x   ", "'; DROP TABLE collaborations;--",
    "%s%s%n", "{{7*7}}", "${jndi:ldap://x}", "../../etc/passwd", "<script>alert(1)</script>", "null", "true", "0",
    "é" * 101, "中" * 300, "\\u0000", "\\ud800", "arn:aws:cleanrooms:us-east-1:123456789012:collaboration/x",
)
BAD_UUIDS = (
    "", "not-a-uuid", "..", ".", "%2e%2e", "%2E%2E%2F", "%2F", "a%2Fb", "%00", "%ff", "%", "%zz", "%2",
    "00000000-0000-4000-8000-00000000000", "00000000-0000-4000-8000-0000000000000", "00000000000040008000000000000000",
    "{00000000-0000-4000-8000-000000000000}", "%3F", "%23", "%20", "+", "*", "'", "%27%20OR%201%3D1--",
    "%E2%80%AE", "%C0%AE%C0%AE", "..%2F..%2Fmemberships", "x" * 8_000, "%41" * 2_000,
)


# ------------------------------------------------------------------------------------------------ routing


@dataclass(frozen=True)
class _Template:
    method: str
    segments: tuple[str | None, ...]
    labels: tuple[str, ...]
    operation: str


def _split(path: str) -> list[str]:
    path = path.strip("/")
    return path.split("/") if path else []


def _templates() -> list[_Template]:
    out = []
    for name in MODEL.operation_names:
        http = MODEL.operation_model(name).http
        segments, labels = [], []
        for part in _split(http["requestUri"].split("?", 1)[0]):
            if part.startswith("{") and part.endswith("}"):
                segments.append(None)
                labels.append(part[1:-1].rstrip("+"))
            else:
                segments.append(part)
        out.append(_Template(http["method"], tuple(segments), tuple(labels), name))
    return sorted(out, key=lambda t: -sum(s is not None for s in t.segments))  # literals win over labels


TEMPLATES = _templates()


def route(method: str, raw_path: str) -> tuple[str, dict[str, str]] | None:
    """Which model operation a request line names (raw, still-encoded path), with decoded labels; None if none."""
    parts = _split(raw_path)
    for t in TEMPLATES:
        if t.method != method or len(t.segments) != len(parts):
            continue
        values = []
        for want, got in zip(t.segments, parts):
            if want is None:
                if not got:
                    break
                values.append(got)
            elif want != got:
                break
        else:
            return t.operation, {name: unquote(v) for name, v in zip(t.labels, values)}
    return None


# ------------------------------------------------------------------------------------------- what to target


@dataclass
class Pools:
    """Resources the generator may point at, with what the caller (the fuzz account) is to each of them."""

    account_id: str
    own_collaborations: list[dict] = field(default_factory=list)  # {"id", "arn", "members", "deleted"}
    own_memberships: list[dict] = field(default_factory=list)  # {"id", "arn", "collaboration_id", "gone"}
    invited: list[str] = field(default_factory=list)  # others' collaborations the caller is invited to or in
    foreign_collaborations: list[str] = field(default_factory=list)  # the caller is not a member
    foreign_memberships: list[str] = field(default_factory=list)
    foreign_arns: list[str] = field(default_factory=list)
    invitable_accounts: list[str] = field(default_factory=list)  # may be invited by the caller
    other_accounts: list[str] = field(default_factory=list)  # never invited (victims): only used as targets
    tokens: dict[str, list[str]] = field(default_factory=dict)  # operation -> nextTokens seen

    def collaboration(self, rng: random.Random) -> tuple[str, str]:
        live = [c for c in self.own_collaborations if not c["deleted"]]
        dead = [c for c in self.own_collaborations if c["deleted"]]
        roll = rng.random()
        if live and roll < 0.45:
            return rng.choice(live)["id"], "own"
        if self.invited and roll < 0.6:
            return rng.choice(self.invited), "invited"
        if self.foreign_collaborations and roll < 0.8:
            return rng.choice(self.foreign_collaborations), "foreign"
        if dead and roll < 0.88:
            return rng.choice(dead)["id"], "own_deleted"
        return str(uuid.UUID(int=rng.getrandbits(128), version=4)), "random"

    def membership(self, rng: random.Random) -> tuple[str, str]:
        present = [m for m in self.own_memberships if not m["gone"]]
        roll = rng.random()
        if present and roll < 0.55:
            return rng.choice(present)["id"], "own"
        if self.foreign_memberships and roll < 0.8:
            return rng.choice(self.foreign_memberships), "foreign"
        gone = [m for m in self.own_memberships if m["gone"]]
        if gone and roll < 0.88:
            return rng.choice(gone)["id"], "own_gone"
        return str(uuid.UUID(int=rng.getrandbits(128), version=4)), "random"

    def arn(self, rng: random.Random) -> tuple[str, str]:
        roll = rng.random()
        live = [c for c in self.own_collaborations if not c["deleted"]]
        present = [m for m in self.own_memberships if not m["gone"]]
        if live and roll < 0.35:
            return rng.choice(live)["arn"], "own"
        if present and roll < 0.55:
            return rng.choice(present)["arn"], "own"
        if self.foreign_arns and roll < 0.8:
            return rng.choice(self.foreign_arns), "foreign"
        kind = rng.choice(("collaboration", "membership"))
        account = rng.choice([self.account_id, *self.other_accounts, "123456789012"])
        random_id = uuid.UUID(int=rng.getrandbits(128), version=4)
        return f"arn:aws:cleanrooms:{REGION}:{account}:{kind}/{random_id}", "random"

    def member_account(self, rng: random.Random, collaboration_id: str | None) -> str:
        own = next((c for c in self.own_collaborations if c["id"] == collaboration_id), None)
        roll = rng.random()
        if own and own["members"] and roll < 0.6:
            return rng.choice(own["members"])
        if roll < 0.75:
            return self.account_id
        if self.other_accounts and roll < 0.9:
            return rng.choice(self.other_accounts)
        return "".join(rng.choice(string.digits) for _ in range(12))

    def invitee(self, rng: random.Random, exclude: set[str]) -> str | None:
        options = [a for a in self.invitable_accounts if a not in exclude]
        if options and rng.random() < 0.6:
            return rng.choice(options)
        for _ in range(10):
            candidate = "9" + "".join(rng.choice(string.digits) for _ in range(11))
            if candidate not in exclude and candidate not in self.other_accounts and candidate != self.account_id:
                return candidate
        return None

    # -- learning from answers

    def learn(self, operation: str, labels: dict, params: dict, status: int, body: bytes) -> None:
        """Record what a successful call created or removed (operation and labels as routed)."""
        if status >= 300:
            return
        try:
            data = json.loads(body) if body else {}
        except ValueError:
            return
        if operation == "CreateCollaboration":
            c = data.get("collaboration") or {}
            members = [m.get("accountId") for m in params.get("members") or [] if isinstance(m, dict)]
            self.own_collaborations.append({"id": c.get("id"), "arn": c.get("arn"), "deleted": False,
                                            "members": [m for m in members if isinstance(m, str)]})
        elif operation == "CreateMembership":
            m = data.get("membership") or {}
            self.own_memberships.append({"id": m.get("id"), "arn": m.get("arn"),
                                         "collaboration_id": m.get("collaborationId"), "gone": False})
        elif operation == "DeleteCollaboration":
            for c in self.own_collaborations:
                if c["id"] == labels.get("collaborationIdentifier"):
                    c["deleted"] = True
        elif operation == "DeleteMembership":
            for m in self.own_memberships:
                if m["id"] == labels.get("membershipIdentifier"):
                    m["gone"] = True
        token = data.get("nextToken") if isinstance(data, dict) else None
        if isinstance(token, str):
            self.tokens.setdefault(operation, []).append(token)
            del self.tokens[operation][:-20]


# ------------------------------------------------------------------------------------------------ requests


@dataclass
class Request:
    operation: str  # what the generator aimed at (the routed operation may differ after a mutation)
    method: str
    path: str
    query: str
    body: bytes
    headers: dict[str, str]
    content_type: object  # a string, None for no Content-Type, or ... for the default
    params: dict
    expect: str | None  # "reject", "ok" or None
    why: list[str]  # which mutations were applied (and why the expectation holds)
    sign: bool = True
    secret_override: str | None = None
    picks: dict = field(default_factory=dict)  # label member -> what it points at ("own", "foreign", ...)
    reasons: dict = field(default_factory=dict)  # domain -> why the request must be refused
    overrides: dict = field(default_factory=dict)  # wire-level changes applied when serializing
    touched: list = field(default_factory=list)  # member paths already mutated

    def describe(self, limit: int = 300) -> str:
        target = self.path + (f"?{self.query}" if self.query else "")
        return (f"{self.operation} [{', '.join(self.why) or 'valid'}] {self.method} {target[:limit]} "
                + ("" if self.content_type is ... else f"content-type={self.content_type!r} ")
                + f"body={self.body[:limit]!r}")


def _text(rng: random.Random, lo: int, hi: int, *, newlines: bool = False) -> str:
    n = rng.randint(lo, hi)
    pool = _ASCII + _UNICODE + ("\r\n\t" if newlines else "\t")
    chars = [rng.choice(pool if rng.random() < 0.7 else string.ascii_letters) for _ in range(n)]
    if chars and not any(c.strip(" \t\n\r\f\v") for c in chars):
        chars[0] = "x"
    return "".join(chars)


class Generator:
    def __init__(self, rng: random.Random, pools: Pools) -> None:
        self.rng = rng
        self.pools = pools

    # -- valid values ---------------------------------------------------------------------------------------

    def valid(self, shape: botocore.model.Shape, member: str = "", picks: dict | None = None, depth: int = 0):
        """A random value satisfying every constraint the model states for `shape`."""
        rng, meta, kind = self.rng, shape.metadata, shape.type_name
        picks = {} if picks is None else picks
        if kind == "structure":
            if meta.get("union"):
                name = rng.choice(list(shape.members))
                return {name: self.valid(shape.members[name], name, picks, depth + 1)}
            out = {}
            for name, m in shape.members.items():
                if name in shape.required_members or (depth < 6 and rng.random() < 0.35):
                    out[name] = self.valid(m, name, picks, depth + 1)
            return out
        if kind == "list":
            lo, hi = meta.get("min", 0), min(meta.get("max", 3), 3)
            enum = shape.member.metadata.get("enum")
            if enum:
                return rng.sample(list(enum), rng.randint(0, min(len(enum), hi)))
            return [self.valid(shape.member, member, picks, depth + 1) for _ in range(rng.randint(lo, max(lo, hi)))]
        if kind == "map":
            lo, hi = meta.get("min", 0), min(meta.get("max", 3), 4)
            return {self.valid(shape.key, "key", picks, depth + 1): self.valid(shape.value, "value", picks, depth + 1)
                    for _ in range(rng.randint(lo, max(lo, hi)))}
        if kind == "string":
            return self._string(shape, member, picks)
        if kind in ("integer", "long"):
            return rng.randint(meta.get("min", 0), meta.get("max", 1000))
        if kind == "boolean":
            return rng.random() < 0.5
        raise AssertionError(f"no generator for {kind} ({shape.name}); inputs of implemented operations lack it")

    def _string(self, shape: botocore.model.Shape, member: str, picks: dict) -> str:
        rng, meta, name = self.rng, shape.metadata, shape.name
        if shape.enum:
            return rng.choice(list(shape.enum))
        if name == "CollaborationIdentifier":
            value, picks[member] = self.pools.collaboration(rng)
            return value
        if name == "MembershipIdentifier":
            value, picks[member] = self.pools.membership(rng)
            return value
        if name == "CleanroomsArn":
            value, picks[member] = self.pools.arn(rng)
            return value
        if name == "AccountId":
            return "".join(rng.choice(string.digits) for _ in range(12))  # callers override where it matters
        if name in ("DisplayName", "CollaborationName"):
            return _text(rng, 1, rng.choice((12, 40, meta["max"])))
        if name == "CollaborationDescription":
            return "" if rng.random() < 0.1 else _text(rng, 1, rng.choice((30, meta["max"])), newlines=True)
        if name.endswith("BucketString"):
            return "b" + "".join(rng.choice(string.ascii_lowercase + string.digits + "-") for _ in
                                 range(rng.randint(1, 40))) + rng.choice("abc123")
        if name == "KeyPrefix":
            chars = string.ascii_letters + string.digits + "_!.=*/-"
            return "".join(rng.choice(chars) for _ in range(rng.randint(0, 40)))
        if name == "RoleArn":
            return f"arn:aws:iam::{rng.randint(10**11, 10**12 - 1)}:role/" + "r" * rng.randint(8, 60)
        if name == "PaginationToken":
            tokens = [t for ts in self.pools.tokens.values() for t in ts]
            if tokens and rng.random() < 0.6:
                return rng.choice(tokens)
            return "".join(rng.choice(string.ascii_letters + string.digits + "-_.") for _ in range(rng.randint(0, 80)))
        if name == "TagKey":
            key = _text(rng, 1, rng.choice((8, 30, meta["max"])))
            return "k" + key[1:] if key.lower().startswith(RESERVED_TAG_PREFIX) else key
        if name == "TagValue":
            return _text(rng, 0, rng.choice((8, meta["max"])))
        if meta.get("pattern"):
            raise AssertionError(f"no generator for patterned string shape {name}")
        return _text(rng, max(meta.get("min", 0), 0), min(meta.get("max", 40), 40))

    # -- whole requests --------------------------------------------------------------------------------------

    def request(self, operation: str, *, mutate: bool | None = None) -> Request:
        """One request for `operation`: valid about a third of the time, else with 1-3 mutations."""
        rng = self.rng
        op = MODEL.operation_model(operation)
        picks: dict[str, str] = {}
        params = self.valid(op.input_shape, picks=picks)
        self._make_sensible(operation, params, picks)
        request = self._build(op, params, picks)
        if mutate is None:
            mutate = rng.random() < 0.66
        if mutate:
            for _ in range(rng.choices((1, 2, 3), (70, 20, 10))[0]):
                self._mutate(op, request)
            self._finish(op, request)
        return request

    def _make_sensible(self, operation: str, params: dict, picks: dict) -> None:
        """Nudge valid-by-model inputs towards valid-by-behaviour ones, so that many calls succeed."""
        rng = self.rng
        if operation == "CreateCollaboration":
            members, seen = [], {self.pools.account_id}
            for spec in params["members"][: rng.randint(0, 5)]:
                account = self.pools.invitee(rng, seen)
                if account is None:
                    continue
                seen.add(account)
                spec["accountId"] = account
                members.append(spec)
            params["members"] = members
            if rng.random() < 0.8:  # at most one member may query; payments are rarely consistent at random
                params["creatorMemberAbilities"] = [a for a in params["creatorMemberAbilities"] if a != "CAN_QUERY"]
                for spec in members:
                    spec["memberAbilities"] = [a for a in spec["memberAbilities"] if a != "CAN_QUERY"]
                    spec.pop("paymentConfiguration", None)
                params.pop("creatorPaymentConfiguration", None)
                params["creatorMemberAbilities"].append("CAN_QUERY")
        elif operation == "CreateMembership" and rng.random() < 0.8:
            for key in ("paymentConfiguration", "isMetricsEnabled"):
                params.pop(key, None)
        elif operation == "UpdateMembership" and rng.random() < 0.8:
            params.pop("membershipPaymentConfiguration", None)
        elif operation == "DeleteMember":
            params["accountId"] = self.pools.member_account(rng, params["collaborationIdentifier"])
        elif operation in ("ListCollaborations", "ListMemberships", "ListMembers") and rng.random() < 0.5:
            params.pop("nextToken", None)

    def _build(self, op: botocore.model.OperationModel, params: dict, picks: dict) -> Request:
        method, path, query, body = serialize(op, params)
        return Request(op.name, method, path, query, body, {}, ..., params,
                       self._expectation(op.name, params, picks), [], picks=picks)

    def _expectation(self, operation: str, params: dict, picks: dict) -> str | None:
        """What a valid-by-model request must do, judged from what it targets (not from the server's code)."""
        if set(picks.values()) & {"foreign", "random"}:
            return "reject"  # nobody sees what is not theirs, and unknown ids do not exist
        tags = params.get("tags")
        if isinstance(tags, dict) and (len(tags) > MAX_TAGS_PER_RESOURCE
                                       or any(k.lower().startswith(RESERVED_TAG_PREFIX) for k in tags)):
            return "reject"  # docs/behaviour.md, Tags
        kind = picks.get("collaborationIdentifier") or picks.get("membershipIdentifier") or picks.get("resourceArn")
        if operation in ("UpdateCollaboration", "DeleteCollaboration", "DeleteMember") and kind != "own":
            return "reject"  # only the creator
        if kind in ("own_deleted", "own_gone"):
            return "reject"  # a deleted collaboration, a membership that was left: gone for the caller
        if "nextToken" in params:
            return None
        if operation in ("ListCollaborations", "ListMemberships"):
            return "ok"
        if kind == "own" and operation in ("GetCollaboration", "ListMembers", "GetMembership", "ListTagsForResource",
                                           "UpdateCollaboration"):
            return "ok"
        return None

    # -- mutations -------------------------------------------------------------------------------------------

    def _slots(self, shape, value, path=()):
        """(path, shape, required, present, container) for every structure member, list item and map value."""
        if shape.type_name == "structure" and isinstance(value, dict):
            for name, m in shape.members.items():
                present = name in value
                yield path + (name,), m, name in shape.required_members, present, "structure"
                if present:
                    yield from self._slots(m, value[name], path + (name,))
        elif shape.type_name == "list" and isinstance(value, list):
            for i, item in enumerate(value):
                yield path + (i,), shape.member, True, True, "list"
                yield from self._slots(shape.member, item, path + (i,))
        elif shape.type_name == "map" and isinstance(value, dict):
            for key, item in value.items():
                yield path + (key,), shape.value, True, True, "map"
                yield from self._slots(shape.value, item, path + (key,))

    @staticmethod
    def _domain(op, path) -> str:
        loc = op.input_shape.members[path[0]].serialization.get("location")
        return {"uri": "label", "querystring": "query"}.get(loc, "body")

    @staticmethod
    def _set(root: dict, path: tuple, value, delete: bool = False) -> None:
        node = root
        for step in path[:-1]:
            node = node[step]
        if delete:
            del node[path[-1]]
        else:
            node[path[-1]] = value

    @staticmethod
    def _get(root, path):
        for step in path:
            root = root[step]
        return root

    def _pick_slot(self, op, request, want):
        """A random slot satisfying `want`, not overlapping one mutated before (so mutations never undo others)."""
        slots = [s for s in self._slots(op.input_shape, request.params)
                 if want(s) and not any(s[0][:len(t)] == t or t[:len(s[0])] == s[0] for t in request.touched)]
        if not slots:
            return None
        slot = self.rng.choice(slots)
        request.touched.append(slot[0])
        return slot

    @staticmethod
    def _reject(request, domain: str, why: str) -> None:
        request.reasons.setdefault(domain, []).append(why)

    @staticmethod
    def _dotted(path) -> str:
        return ".".join(map(str, path))

    def _mutate(self, op, request: Request) -> None:
        has_body = any(self._domain(op, (n,)) == "body" for n in op.input_shape.members)
        kinds = ["wrong_type", "drop_required", "too_long", "too_short", "int_range", "bad_enum", "too_many",
                 "null", "unknown_keys", "deep_nesting", "unicode", "query_tricks", "content_type", "spoof",
                 "wrong_method", "auth"]
        if "{" in op.http["requestUri"]:
            kinds += ["bad_label"] * 4
        if has_body:
            kinds += ["raw_body"] * 2 + ["wrong_type", "null", "unicode", "deep_nesting"]
            if "tags" in op.input_shape.members:
                kinds += ["bad_tags"]
        else:
            kinds += ["body_on_bodiless"] * 2
        getattr(self, f"_m_{self.rng.choice(kinds)}")(op, request)

    def _m_wrong_type(self, op, request):
        slot = self._pick_slot(op, request, lambda s: self._domain(op, s[0]) == "body"
                               or (self._domain(op, s[0]) == "query" and s[1].type_name == "integer"))
        if slot is None:
            return
        path, shape = slot[0], slot[1]
        if self._domain(op, path) == "query":
            value = self.rng.choice(("abc", "1.5", "1e3", "0x10", "", "5_0", " 5", "true", "[]", "%00", "٣"))
        else:
            others = {"string": [5, 1.5, True, ["x"], {"a": "b"}], "integer": ["5", 1.5, True, [1], {"a": 1}],
                      "boolean": ["true", 1, 0, [True], {"a": True}, "false"], "list": ["x", 5, {"a": "b"}, True],
                      "map": ["x", 5, ["a", "b"], True], "structure": ["x", 5, ["a"], True, 1.5]}
            value = self.rng.choice(others[shape.type_name])
        self._set(request.params, path, value)
        request.why.append(f"wrong_type:{self._dotted(path)}={value!r}")
        self._reject(request, self._domain(op, path), "wrong type")

    def _m_drop_required(self, op, request):
        slot = self._pick_slot(op, request, lambda s: s[2] and s[3] and s[4] == "structure"
                               and not (len(s[0]) == 1 and self._domain(op, s[0]) == "label"))
        if slot is None:
            return
        self._set(request.params, slot[0], None, delete=True)
        request.why.append(f"drop_required:{self._dotted(slot[0])}")
        self._reject(request, self._domain(op, slot[0]), "required member missing")

    def _m_too_long(self, op, request):
        slot = self._pick_slot(op, request, lambda s: s[1].type_name == "string" and "max" in s[1].metadata
                               and self._domain(op, s[0]) != "label")
        if slot is None:
            return
        path, shape = slot[0], slot[1]
        limit = shape.metadata["max"]
        n = self.rng.choice((limit + 1, limit + self.rng.randint(2, 300), 100_000))
        if self._domain(op, path) == "query":  # ASCII and bounded: the request line stays under 64 KiB
            value = "x" * min(n, 30_000)
        else:
            value = (self.rng.choice(("x", "é", "中", "a b", "😀")) * n)[:n]
        self._set(request.params, path, value)
        request.why.append(f"too_long({len(value)}):{self._dotted(path)}")
        if len(value) > limit:
            self._reject(request, self._domain(op, path), "too long")

    def _m_too_short(self, op, request):
        slot = self._pick_slot(op, request, lambda s: s[1].type_name == "string" and s[1].metadata.get("min", 0) > 0
                               and self._domain(op, s[0]) != "label" and not s[1].metadata.get("enum"))
        if slot is None:
            return
        path, shape = slot[0], slot[1]
        value = ("1" if shape.name == "AccountId" else "x") * self.rng.randint(0, shape.metadata["min"] - 1)
        self._set(request.params, path, value)
        request.why.append(f"too_short:{self._dotted(path)}")
        self._reject(request, self._domain(op, path), "too short")

    def _m_int_range(self, op, request):
        slot = self._pick_slot(op, request, lambda s: s[1].type_name == "integer")
        if slot is None:
            return
        path, shape = slot[0], slot[1]
        lo, hi = shape.metadata.get("min", -(2**31)), shape.metadata.get("max", 2**31 - 1)
        value = self.rng.choice((lo - 1, hi + 1, -1, 0, 2**31, 2**63, 10**30, -(10**30)))
        if lo <= value <= hi:
            value = hi + 1
        self._set(request.params, path, value)
        request.why.append(f"int_range({value}):{self._dotted(path)}")
        self._reject(request, self._domain(op, path), "out of range")

    def _m_bad_enum(self, op, request):
        slot = self._pick_slot(op, request, lambda s: bool(s[1].metadata.get("enum"))
                               and self._domain(op, s[0]) != "label")
        if slot is None:
            return
        path, shape = slot[0], slot[1]
        enum = shape.metadata["enum"]
        good = self.rng.choice(list(enum))
        value = self.rng.choice((good.lower(), good + " ", " " + good, "", "NOPE", good[:-1], good + "\x00",
                                 good.title(), "LEFT", "REMOVED", "INVITED"))
        if value in enum:
            value = "NOPE"
        self._set(request.params, path, value)
        request.why.append(f"bad_enum({value!r}):{self._dotted(path)}")
        self._reject(request, self._domain(op, path), "not in enum")

    def _m_too_many(self, op, request):
        slot = self._pick_slot(op, request, lambda s: s[1].type_name in ("list", "map") and "max" in s[1].metadata)
        if slot is None:
            return
        path, shape = slot[0], slot[1]
        n = shape.metadata["max"] + 1
        value = {f"k{i}": "v" for i in range(n)} if shape.type_name == "map" else ["x"] * n
        self._set(request.params, path, value)
        request.why.append(f"too_many({n}):{self._dotted(path)}")
        self._reject(request, self._domain(op, path), "too many entries")

    def _m_null(self, op, request):
        slot = self._pick_slot(op, request, lambda s: self._domain(op, s[0]) == "body")
        if slot is None:
            return
        self._set(request.params, slot[0], None)
        request.why.append(f"null:{self._dotted(slot[0])}" + ("" if slot[2] else "(optional)"))
        if slot[2]:
            self._reject(request, "body", "required member null")

    def _m_unknown_keys(self, op, request):
        extra = {"bogus": 1, "Name": "shadow", "__proto__": {"admin": True}, "creatorAccountId": "000000000000",
                 "accountId": "000000000000", "id": "00000000-0000-4000-8000-000000000000", "": "", "x" * 300: [],
                 "status": "ACTIVE", "arn": "arn:aws:cleanrooms:us-east-1:000000000000:collaboration/x",
                 "memberStatus": "ACTIVE", "membershipId": "00000000-0000-4000-8000-000000000000"}
        structs = [s for s in self._slots(op.input_shape, request.params)
                   if s[1].type_name == "structure" and s[3] and self._domain(op, s[0]) == "body"
                   and isinstance(self._get(request.params, s[0]), dict) and not s[1].metadata.get("union")]
        key, value = self.rng.choice(list(extra.items()))
        if structs and self.rng.random() < 0.5:
            path, shape = self.rng.choice(structs)[:2]
            if key in shape.members:
                return
            self._get(request.params, path)[key] = value
        else:
            if key in op.input_shape.members:
                return
            request.overrides.setdefault("extra_body", {})[key] = value
        request.why.append(f"unknown_key({key[:10]!r})")

    def _m_deep_nesting(self, op, request):
        slot = self._pick_slot(op, request, lambda s: self._domain(op, s[0]) == "body")
        if slot is None:
            return
        path, shape = slot[0], slot[1]
        depth = self.rng.choice((10, MAX_JSON_DEPTH - len(path) - 1, MAX_JSON_DEPTH - len(path), 200, 5000))
        opens, closes = [], []
        for _ in range(depth):
            if self.rng.random() < 0.5:
                opens.append("[")
                closes.append("]")
            else:
                opens.append('{"a":')
                closes.append("}")
        inner = self.rng.choice(("[]", "{}"))
        raw = ("".join(opens) + inner + "".join(reversed(closes))).encode()
        placeholder = f"\x00deep{len(request.touched)}\x00"
        request.overrides.setdefault("splices", {})[placeholder] = raw
        self._set(request.params, path, placeholder)
        request.why.append(f"deep_nesting({depth}):{self._dotted(path)}")
        outer_is_list = (opens[0] if opens else inner[0]) == "["
        matches = shape.type_name == ("list" if outer_is_list else "structure") or \
            (shape.type_name == "map" and not outer_is_list)
        total = len(path) + depth + 1  # containers around the value (the root object included) + its own
        if not matches or total > MAX_JSON_DEPTH:
            self._reject(request, "body", f"nesting {total} deep, outer {'list' if outer_is_list else 'object'}")

    def _m_unicode(self, op, request):
        slot = self._pick_slot(op, request, lambda s: s[1].type_name == "string" and not s[1].metadata.get("enum")
                               and self._domain(op, s[0]) != "label")
        if slot is None:
            return
        value = self.rng.choice(HOSTILE_STRINGS)
        self._set(request.params, slot[0], value)
        request.why.append(f"unicode({value[:12]!r}):{self._dotted(slot[0])}")

    def _m_bad_tags(self, op, request):
        if self.rng.random() < 0.5:
            tags = {"aws:" + _text(self.rng, 1, 10): "v", **{f"k{i}": "v" for i in range(self.rng.randint(0, 3))}}
            if self.rng.random() < 0.3:
                tags = {"AWS:Owner": "x"}
        else:
            tags = {f"k{i}": "v" for i in range(MAX_TAGS_PER_RESOURCE + self.rng.randint(1, 100))}
        request.params["tags"] = tags
        request.touched.append(("tags",))
        request.why.append(f"bad_tags({list(tags)[0]!r}, n={len(tags)})")
        self._reject(request, "body", "documented tag rules")

    def _m_bad_label(self, op, request):
        labels = [n for n, m in op.input_shape.members.items()
                  if m.serialization.get("location") == "uri" and (n,) not in request.touched]
        if not labels:
            return
        name = self.rng.choice(labels)
        request.touched.append((name,))
        shape = op.input_shape.members[name]
        good = str(request.params.get(name, ""))
        roll = self.rng.random()
        raw = value = None
        if roll >= 0.85:  # the same text, some characters percent-encoded (upper-case hex): may rightly work
            raw = "".join(f"%{ord(c):02X}" if self.rng.random() < 0.5 and c.isascii() else c for c in good)
            request.overrides.setdefault("raw_labels", {})[name] = raw
            request.why.append(f"label_encoding:{name}")
            return
        if shape.name == "CleanroomsArn":
            value = self.rng.choice((
                good.replace("collaboration/", "membership/"), good.replace(":us-east-1:", ":eu-west-1:"),
                good + "/extra", good + "%2F", good.upper(), good.replace("arn:aws:", "arn:aws-cn:"),
                good.replace("cleanrooms", "cleanrooms-ml"), "arn:aws:cleanrooms:us-east-1:123456789012:",
                "arn:aws:cleanrooms:us-east-1:123456789012:collaboration/../membership/x",
                f"arn:aws:cleanrooms:us-east-1:123456789012:configuredtable/{uuid.UUID(int=self.rng.getrandbits(128))}",
                "arn:aws:cleanrooms:us-east-1:123456789012:collaboration", "arn:aws:s3:::bucket", "*",
                good.replace(":", "%3A", 1), good + "x" * 200, good + "\x00", good.replace("/", "/../", 1),
            ))
        elif roll < 0.7:
            raw = self.rng.choice(BAD_UUIDS)
            if shape.name == "AccountId" and self.rng.random() < 0.5:
                raw = self.rng.choice(("12345678901", "1234567890123", "abcdefghijkl", "-12345678901", "%2e%2e",
                                       quote("１２３４５６７８９０１２"), "123456789012%2F", "1234567890%00"))
        else:
            value = good.upper() if good != good.upper() else good + "0"
        if raw is not None:
            request.overrides.setdefault("raw_labels", {})[name] = raw
            decoded = unquote(raw)
        else:
            request.params[name] = value
            decoded = value
        request.why.append(f"bad_label:{name}={(raw if raw is not None else value)[:40]!r}")
        if not self._label_ok(shape, decoded, good):
            self._reject(request, "label", "bad label")

    @staticmethod
    def _label_ok(shape, decoded: str, good: str) -> bool:
        if shape.name == "AccountId":
            return decoded.isascii() and bool(ACCOUNT_RE.fullmatch(decoded)) and decoded == good
        return decoded == good  # another id or ARN is another resource: unknown, foreign or malformed

    def _m_query_tricks(self, op, request):
        extra = self.rng.choice((
            "foo=bar", "x", "=", "&&", "maxResults=1&maxResults=50", "memberStatus=ACTIVE&memberStatus=INVITED",
            "status=ACTIVE&status=REMOVED", "nextToken=&nextToken=x", "tagKeys=a&tagKeys=a", "MAXRESULTS=0",
            "max%52esults=5", "accountId=000000000000", "X-Amz-Signature=00", "%00=%00", "a=%ff", "a=%",
            "collaborationIdentifier=00000000-0000-4000-8000-000000000000", "a=" + "b" * 20_000, "a+b=c+d",
        ))
        request.overrides.setdefault("extra_query", []).append(extra)
        request.why.append(f"query:{extra[:30]}")

    def _m_content_type(self, op, request):
        value = self.rng.choice((None, "text/plain", "application/xml", "application/x-www-form-urlencoded",
                                 "multipart/form-data; boundary=x", "application/x-amz-json-1.1", "*/*",
                                 "application/json; charset=latin-1", "", "application/json;;", "application/JSON"))
        request.content_type = value
        request.why.append(f"content_type:{value!r}")

    def _m_spoof(self, op, request):
        header, value = self.rng.choice((
            ("x-amz-account-id", "000000000000"), ("x-amzn-account-id", "000000000000"),
            ("x-forwarded-for", "10.0.0.1"), ("x-amz-user-agent", "x" * 2000), ("x-amzn-requestid", "forged"),
            ("x-http-method-override", "DELETE"), ("x-original-url", "/memberships"), ("x-amz-target", "x.y"),
        ))
        request.headers[header] = value
        request.why.append(f"header:{header}")

    def _m_raw_body(self, op, request):
        valid_json = json.dumps(self._body_of(op, request.params)).encode()
        required = self._required_body(op)
        choice = self.rng.choice(("invalid_utf8", "truncated", "array", "string", "null", "number", "nan",
                                  "nested", "unclosed", "duplicate_keys", "bom", "overlong_utf8", "huge_number",
                                  "trailing_garbage", "empty_object", "whitespace"))
        if choice in ("nan", "huge_number"):  # a type error in a required member either way
            if not required:
                return
            doc = self._body_of(op, request.params)
            doc[required[0]] = "__SENTINEL__"
            token = b"NaN" if choice == "nan" else b"1" + b"0" * 5000
            body, reject = json.dumps(doc).encode().replace(b'"__SENTINEL__"', token), True
        else:
            body, reject = {
                "invalid_utf8": (valid_json[:-1] + b', "x": "\xff\xfe\xc3"}', True),
                "truncated": (valid_json[: max(1, len(valid_json) // 2)], True),
                "array": (b"[" + valid_json + b"]", True),
                "string": (json.dumps(valid_json.decode()).encode(), True),
                "null": (b"null", True),
                "number": (b"1e999", True),
                "nested": (b'{"a":' * 10_000 + b"1" + b"}" * 10_000, True),
                "unclosed": (b"[" * 10_000, True),
                "duplicate_keys": (valid_json[:-1] + b"," + valid_json[1:] if len(valid_json) > 2 else valid_json,
                                   False),
                "bom": (b"\xef\xbb\xbf" + valid_json, False),
                "overlong_utf8": (valid_json[:-1] + b', "x": "\xc0\xaf"}', True),
                "trailing_garbage": (valid_json + b"garbage", True),
                "empty_object": (b"{}", bool(required)),
                "whitespace": (b" \r\n\t ", bool(required)),
            }[choice]
        request.overrides["raw_body"] = body
        request.reasons.pop("raw_body", None)  # a raw body replaces any raw body before it
        request.why.append(f"raw_body:{choice}")
        if reject:
            self._reject(request, "raw_body", choice)

    def _required_body(self, op) -> list[str]:
        return [n for n in op.input_shape.required_members if self._domain(op, (n,)) == "body"]

    def _body_of(self, op, params) -> dict:
        return {k: v for k, v in params.items() if self._domain(op, (k,)) == "body" and "\x00deep" not in str(v)}

    def _m_body_on_bodiless(self, op, request):
        body = self.rng.choice((b'{"name": "x"}', b"not json", b"\xff\xfe", b"[" * 5000, b"{}" * 1000,
                                json.dumps({"collaborationIdentifier": str(uuid.UUID(int=self.rng.getrandbits(128))),
                                            "membershipIdentifier": "x", "resourceArn": "x"}).encode()))
        request.overrides["raw_body"] = body
        request.why.append(f"body_on_{request.method}:{body[:12]!r}")

    def _m_wrong_method(self, op, request):
        request.method = self.rng.choice([m for m in ("GET", "POST", "PUT", "PATCH", "DELETE") if m != request.method])
        request.overrides["method_changed"] = True
        request.why.append(f"method:{request.method}")

    def _m_auth(self, op, request):
        if self.rng.random() < 0.5:
            request.sign = False
        else:
            request.secret_override = "wrong-secret"
        request.why.append("auth:" + ("unsigned" if not request.sign else "wrong secret"))
        self._reject(request, "auth", "bad signature")

    # -- settling ---------------------------------------------------------------------------------------------

    _KEEPS_OK = ("unknown_key", "header:", "body_on_")

    def _finish(self, op, request: Request) -> None:
        """Serialize the mutated params with the wire overrides, then settle what may be expected."""
        overrides = request.overrides
        _, path, query, body = serialize(op, request.params, raw_labels=overrides.get("raw_labels"),
                                         extra_body=overrides.get("extra_body"), splices=overrides.get("splices"))
        extra = overrides.get("extra_query", [])
        request.path = path
        request.query = "&".join(q for q in (query, *extra) if q)
        request.body = overrides.get("raw_body", body)
        reasons = dict(request.reasons)
        if "raw_body" in overrides:
            reasons.pop("body", None)  # the generated body (and its mutations) never went out
        wires = {m.serialization.get("name", n) for n, m in op.input_shape.members.items()
                 if m.serialization.get("location") == "querystring"}
        if any(pair.partition("=")[0] in wires for q in extra for pair in q.split("&")):
            reasons.pop("query", None)  # a duplicate of a real parameter: which one counts is not ours to say
        routed = route(request.method, path)
        if routed is None:
            request.expect = "reject"
        elif "auth" in reasons:
            request.expect = "reject"
        elif routed[0] != op.name or overrides.get("method_changed"):
            request.expect = None  # another operation now: nothing known about its outcome
        elif any(reasons.values()):
            request.expect = "reject"
        elif request.expect == "ok" and not all(w.startswith(self._KEEPS_OK) or w.endswith("(optional)")
                                                for w in request.why):
            request.expect = None
        request.reasons = reasons


def serialize(op: botocore.model.OperationModel, params: dict, *, raw_labels: dict | None = None,
              extra_body: dict | None = None, splices: dict | None = None) -> tuple[str, str, str, bytes]:
    """rest-json: labels into the path (fully percent-encoded), query members, the rest as a JSON object.

    JSON is ASCII-escaped, so lone surrogates travel as ``\\ud800`` escapes (legal JSON, invalid Unicode).
    `splices` maps placeholder strings in `params` to raw JSON text put in their place (for nesting too deep
    for ``json.dumps``).
    """
    path = op.http["requestUri"]
    query: list[str] = []
    body: dict = {}
    has_body = False
    for name, member in op.input_shape.members.items():
        location = member.serialization.get("location")
        wire = member.serialization.get("name", name)
        if location == "uri":
            if raw_labels and name in raw_labels:
                text = raw_labels[name] if raw_labels[name].isascii() else quote(raw_labels[name], safe="%")
            else:
                text = quote(str(params.get(name, "")).encode("utf-8", "surrogatepass"), safe="")
            path = path.replace("{" + wire + "}", text)
        elif location == "querystring":
            value = params.get(name)
            for item in (value if isinstance(value, list) else [] if value is None else [value]):
                item = json.dumps(item) if isinstance(item, bool) else str(item)
                encoded = item.encode("utf-8", "surrogatepass")  # a lone surrogate goes out as its (invalid) bytes
                query.append(f"{quote(wire, safe='-_.~')}={quote(encoded, safe='-_.~')}")
        else:
            has_body = True
            if name in params:
                body[name] = params[name]
    if extra_body:
        body.update(extra_body)
        has_body = True
    data = json.dumps(body).encode() if has_body else b""
    for placeholder, raw in (splices or {}).items():
        data = data.replace(json.dumps(placeholder).encode(), raw)
    return op.http["method"], path, "&".join(query), data
