"""Requests generated from the botocore model: valid ones, and hostile mutations of them.

Everything is driven by the operation's input shape (types, required members, min/max, patterns, enums, unions,
where each member goes on the wire). Valid values point at real resources some of the time (``Pools``), and each
generated request carries what the test may expect of it without knowing the server's code:

* ``expect == "reject"``: the request is certainly invalid (a model constraint is broken, a documented rule is
  broken, or it targets something the caller cannot see), so it must not succeed;
* ``expect == "ok"``: certainly valid and aimed at the caller's own live resource, so it must succeed;
* ``expect is None``: either outcome may be right; only the generic checks (no 5xx, model conformance) apply.

Strings with a pattern are drawn from the pattern itself (``patterngen``), so any shape of the model has values.
Identifiers come from ``Pools``, keyed by the identifier's shape name (ConfiguredTableIdentifier, ...): the kinds
of resources are derived from the model (``RESOURCES``: CreateX makes one, GetX names it by one more label, DeleteX
removes it, the CreateX labels are its parent), and every successful answer is learned from, so a new operation's
resources are pooled with no code. Identifiers of resources under a parent (a change request in its collaboration,
an analysis rule's type on its table) are linked to the parent named in the same request most of the time.
Behaviour the model does not state (what makes a request succeed) is in per-operation nudges (``NUDGES``).

A seeded ``random.Random`` drives everything, so a seed reproduces a run (given the same pool contents).

Adding an operation: it is generated, mutated and pooled as it is; for its valid requests to succeed some of the
time, add a nudge in ``NUDGES`` (and in ``OK_WHEN_OWN`` or ``CREATOR_ONLY`` where the outcome is certain).
"""

from __future__ import annotations

import copy
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
from tests.support import patterngen

MODEL = load_service_model()
IMPLEMENTED = tuple(sorted(load_all()))
REGION = "us-east-1"
ACCOUNT_RE = re.compile(r"\d{12}")
RESERVED_TAG_PREFIX = "aws:"
MAX_TAGS_PER_RESOURCE = 50  # docs/behaviour.md: a resource holds at most 50 tags
MAX_JSON_DEPTH = 64  # docs/behaviour.md: deeper bodies are SerializationException

_UNRESERVED = frozenset(string.ascii_letters + string.digits + "-._~")  # may stand unencoded in a path
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


def _labels(operation: str) -> list[tuple[str, botocore.model.Shape]]:
    shape = MODEL.operation_model(operation).input_shape
    return [(n, m) for n, m in shape.members.items() if m.serialization.get("location") == "uri"]


@dataclass(frozen=True)
class Resource:
    """A kind of resource as the model shows it: CreateX makes it, GetX reads it by one more label than CreateX
    takes (its identifier, or for analysis rules its type), DeleteX removes it.

    Pools of real identifiers are keyed by `shape` (the identifier's shape name, e.g. ConfiguredTableIdentifier, or
    the type enum's for a resource known by (parent, type)); `scope` names the CreateX labels the resource lives
    under (a change request under its collaboration), whose values every entry records.
    """

    create: str
    output_key: str  # the CreateX output member that holds the resource
    label: str  # the member naming it in GetX/DeleteX
    shape: str
    scope: tuple[str, ...]
    typed: bool  # known by (scope, an enum value): at most one per type and parent
    delete: str | None


def _resources() -> dict[str, Resource]:
    """Every resource of the model derived from its Create/Get/Delete operations (implemented or not)."""
    names = set(MODEL.operation_names)
    out = {}
    for create in sorted(n for n in names if n.startswith(("Create", "Start"))):  # StartProtectedQuery makes one
        noun = create[len("Create"):] if create.startswith("Create") else create[len("Start"):]
        if "Get" + noun not in names:
            continue
        create_labels = tuple(n for n, _ in _labels(create))
        extra = [(n, s) for n, s in _labels("Get" + noun) if n not in create_labels]
        holders = [n for n, m in MODEL.operation_model(create).output_shape.members.items()
                   if m.type_name == "structure"]
        if len(extra) != 1 or len(holders) != 1:
            continue
        label, shape = extra[0]
        out[create] = Resource(create, holders[0], label, shape.name, create_labels, bool(shape.enum),
                               "Delete" + noun if "Delete" + noun in names else None)
    return out


RESOURCES = {k: r for k, r in _resources().items() if r.shape != "UUID"}  # a shape too generic to pool by
DELETES = {r.delete: r for r in RESOURCES.values() if r.delete}
BY_SHAPE = {r.shape: r for r in RESOURCES.values()}
# Deletes the model documents as idempotent: operation -> the label of the identifier that may be unknown.
IDEMPOTENT_DELETES = {"DeleteIntermediateTable": "intermediateTableIdentifier"}
REJECT_PICKS = frozenset({"foreign", "random", "mismatch", "own_gone", "unreadable"})


@dataclass
class Pools:
    """Real identifiers the generator points at, each with what the caller (the fuzz account) is to it.

    ``ids[shape]`` lists entries ``{"id", "arn", "pick", "scope", "data", "gone"}``: `pick` is ``own`` (the
    caller's: it created it), ``invited`` (a collaboration of someone else's the caller is or was a member of) or
    ``foreign`` (someone else's, out of the caller's reach); `scope` maps the labels of the parent it lives under
    to their values; `data` is the resource as last answered (collaborations also keep the accounts they invited,
    under ``members``); ``pinned`` marks resources that Delete requests leave alone (so that reaching the operations
    on them does not hang on luck). Entries come from the test's world (`add`) and from every successful answer
    (`learn`).
    """

    account_id: str
    ids: dict[str, list[dict]] = field(default_factory=dict)
    invitable_accounts: list[str] = field(default_factory=list)  # may be invited by the caller
    other_accounts: list[str] = field(default_factory=list)  # never invited (victims): only used as targets
    tokens: dict[str, list[str]] = field(default_factory=dict)  # operation -> nextTokens seen
    catalog: list[dict] = field(default_factory=list)  # the caller's tables: {"database", "table", "columns"}
    foreign_catalog: list[tuple[str, str]] = field(default_factory=list)  # (database, table) only others have
    id_namespaces: list[str] = field(default_factory=list)  # the caller's ID namespace ARNs, defined locally
    # (membership id, ID mapping workflow ARN): the caller's workflows whose namespaces that membership's
    # collaboration has associated
    id_mapping_workflows: list[tuple[str, str]] = field(default_factory=list)
    # ID mapping tables are named by the generic UUID shape, which is not pooled: (membership id, table id) of the
    # caller's pinned tables, and of tables for DeleteIdMappingTable to take
    id_mapping_tables: list[tuple[str, str]] = field(default_factory=list)
    deletable_id_mapping_tables: list[tuple[str, str]] = field(default_factory=list)

    def add(self, shape: str, value: str, pick: str = "own", *, arn: str | None = None, scope: dict | None = None,
            data: dict | None = None, **extra) -> dict:
        entry = {"id": value, "arn": arn, "pick": pick, "scope": dict(scope or {}), "data": dict(data or {}),
                 "gone": False, **extra}
        self.ids.setdefault(shape, []).append(entry)
        return entry

    def entries(self, shape: str) -> list[dict]:
        return self.ids.get(shape, [])

    def entry(self, shape: str, value, scope: dict | None = None) -> dict | None:
        """The live entry with this id (and scope, when given)."""
        return next((e for e in self.entries(shape) if e["id"] == value and not e["gone"]
                     and all(e["scope"].get(k) == v for k, v in (scope or {}).items())), None)

    def kind_of(self, shape: str, value) -> str:
        """What an identifier is to the caller: own, invited, foreign, own_gone (deleted, left) or random."""
        found = [e for e in self.entries(shape) if e["id"] == value]
        if not found:
            return "random"
        entry = next((e for e in found if not e["gone"]), found[-1])
        if entry["gone"]:
            return "own_gone" if entry["pick"] == "own" else "foreign"
        return entry["pick"]

    def pick(self, shape: str, rng: random.Random, random_value, *, deleting: bool = False) -> tuple[str, str]:
        """An identifier for a member of this shape, and what it is to the caller. Deleting, never a pinned one
        (resources the test keeps so that the operations on them stay reachable)."""
        entries = [e for e in self.entries(shape) if not (deleting and e.get("pinned"))]
        own = [e for e in entries if e["pick"] == "own" and not e["gone"]]
        invited = [e for e in entries if e["pick"] == "invited" and not e["gone"]]
        foreign = [e for e in entries if e["pick"] == "foreign"]
        gone = [e for e in entries if e["pick"] == "own" and e["gone"]]
        roll = rng.random()
        for share, options, kind in ((0.45, own, "own"), (0.6, invited, "invited"), (0.8, foreign, "foreign"),
                                     (0.88, gone, "own_gone")):
            if options and roll < share:
                return rng.choice(options)["id"], kind
        return random_value(), "random"

    def arn(self, rng: random.Random, fits=lambda arn: True) -> tuple[str, str]:
        """A resource ARN: the caller's own (tags are for owners only), someone else's, a gone one or a random one;
        only ARNs for which `fits` holds (the input shape's constraints)."""
        with_arn = [e for es in self.ids.values() for e in es if e.get("arn") and fits(e["arn"])]
        own = [e for e in with_arn if e["pick"] == "own" and not e["gone"]]
        others = [e for e in with_arn if e["pick"] != "own"]
        gone = [e for e in with_arn if e["pick"] == "own" and e["gone"]]
        roll = rng.random()
        if own and roll < 0.55:
            return rng.choice(own)["arn"], "own"
        if others and roll < 0.8:
            return rng.choice(others)["arn"], "foreign"
        if gone and roll < 0.86:
            return rng.choice(gone)["arn"], "own_gone"
        kind = rng.choice(("collaboration", "membership", "configuredtable"))
        account = rng.choice([self.account_id, *self.other_accounts, "123456789012"])
        random_id = uuid.UUID(int=rng.getrandbits(128), version=4)
        return f"arn:aws:cleanrooms:{REGION}:{account}:{kind}/{random_id}", "random"

    def member_account(self, rng: random.Random, collaboration_id: str | None) -> str:
        own = self.entry("CollaborationIdentifier", collaboration_id)
        members = own.get("members", []) if own and own["pick"] == "own" else []
        roll = rng.random()
        if members and roll < 0.6:
            return rng.choice(members)
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
        """Record what a successful call created, changed or removed (operation and labels as routed)."""
        if status >= 300:
            return
        try:
            data = json.loads(body) if body else {}
        except ValueError:
            return
        if not isinstance(data, dict):
            return
        resource = RESOURCES.get(operation)
        if resource is not None:
            self._created(resource, labels, params, data.get(resource.output_key))
        elif operation in DELETES:
            self._deleted(DELETES[operation], labels)
        elif operation == "DeleteMember":  # a removed member cannot be removed again
            collaboration = self.entry("CollaborationIdentifier", labels.get("collaborationIdentifier"))
            if collaboration is not None and labels.get("accountId") in collaboration.get("members", []):
                collaboration["members"].remove(labels["accountId"])
        for value in data.values():  # anything answered with its id: keep what it is now
            if isinstance(value, dict) and isinstance(value.get("id"), str):
                for entries in self.ids.values():
                    for e in entries:
                        if e["id"] == value["id"] and not e["gone"]:
                            e["data"].update(value)
        token = data.get("nextToken")
        if isinstance(token, str):
            self.tokens.setdefault(operation, []).append(token)
            del self.tokens[operation][:-20]

    def _created(self, resource: Resource, labels: dict, params: dict, made) -> None:
        if not isinstance(made, dict):
            return
        scope = {name: labels.get(name) for name in resource.scope}
        if resource.typed:
            value = made.get("type") or params.get(resource.label)
            self.ids[resource.shape] = [e for e in self.entries(resource.shape)
                                        if not (e["scope"] == scope and e["id"] == value)]
            self.add(resource.shape, value, scope=scope, data=made)
            return
        extra = {}
        if resource.create == "CreateCollaboration":
            members = [m.get("accountId") for m in params.get("members") or [] if isinstance(m, dict)]
            extra["members"] = [m for m in members if isinstance(m, str)]
        ident = made.get("id", made.get(resource.label.replace("Identifier", "Id")))  # analysisLogExportId
        self.add(resource.shape, ident, arn=made.get("arn"), scope=scope, data=made, **extra)

    def _deleted(self, resource: Resource, labels: dict) -> None:
        value = labels.get(resource.label)
        scope = {name: labels.get(name) for name in resource.scope}
        if resource.typed:
            self.ids[resource.shape] = [e for e in self.entries(resource.shape)
                                        if not (e["scope"] == scope and e["id"] == value)]
            return
        found = [e for e in self.entries(resource.shape) if e["id"] == value]
        if found and not any(all(e["scope"].get(k) == v for k, v in scope.items() if k in e["scope"]) for e in found):
            return  # an idempotent delete through another parent: it was not there, so nothing went
        for e in found:
            e["gone"] = True
        for shape, entries in self.ids.items():  # what lived under it goes with it
            child = BY_SHAPE.get(shape)
            if child is not None and child.typed:
                entries[:] = [e for e in entries if value not in e["scope"].values()]
            else:
                for e in entries:
                    if value in e["scope"].values():
                        e["gone"] = True


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
    picks: dict = field(default_factory=dict)  # member -> what it points at ("own", "foreign", ...)
    verdict: str | None = None  # what a nudge knew of the outcome (see Generator._expectation)
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
        self._verdict: str | None = None  # what a nudge knows of the request it shaped ("ok", "reject")
        self._deleting = False  # the request being made is a Delete: pinned resources are left alone

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
                return rng.sample(list(enum), rng.randint(min(lo, len(enum)), min(len(enum), max(lo, hi))))
            return [self.valid(shape.member, member, picks, depth + 1) for _ in range(rng.randint(lo, max(lo, hi)))]
        if kind == "map":
            lo, hi = meta.get("min", 0), min(meta.get("max", 3), 4)
            return {self.valid(shape.key, "key", picks, depth + 1): self.valid(shape.value, "value", picks, depth + 1)
                    for _ in range(rng.randint(lo, max(lo, hi)))}
        if kind == "string":
            return self._string(shape, member, picks)
        if kind in ("integer", "long"):
            return rng.randint(meta.get("min", 0), meta.get("max", 1000))
        if kind in ("double", "float"):
            return rng.choice((meta.get("min", 0.0), round(rng.uniform(meta.get("min", 0.0), meta.get("max", 1e6)), 3)))
        if kind == "boolean":
            return rng.random() < 0.5
        raise AssertionError(f"no generator for {kind} ({shape.name}); inputs of implemented operations lack it")

    def _string(self, shape: botocore.model.Shape, member: str, picks: dict) -> str:
        rng, meta, name = self.rng, shape.metadata, shape.name
        if shape.enum:
            return rng.choice(list(shape.enum))
        if name in BY_SHAPE or name in self.pools.ids:  # an identifier: a real one most of the time
            value, picks[member] = self.pools.pick(name, rng, lambda: self._patterned(shape),
                                                   deleting=self._deleting)
            return value
        if name == "CleanroomsArn":
            value, picks[member] = self.pools.arn(rng, lambda arn: _fits(shape, arn))
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
            return self._patterned(shape)
        return _text(rng, max(meta.get("min", 0), 0), min(meta.get("max", 40), 40))

    def _patterned(self, shape: botocore.model.Shape) -> str:
        """A value of a patterned string shape, drawn from its pattern and length bounds."""
        meta = shape.metadata
        return patterngen.generate(meta["pattern"], self.rng, meta.get("min", 0), meta.get("max"))

    # -- whole requests --------------------------------------------------------------------------------------

    def request(self, operation: str, *, mutate: bool | None = None) -> Request:
        """One request for `operation`: valid about a third of the time, else with 1-3 mutations."""
        rng = self.rng
        op = MODEL.operation_model(operation)
        picks: dict[str, str] = {}
        self._deleting = operation.startswith("Delete")
        params = self.valid(op.input_shape, picks=picks)
        self._verdict = None
        self._link(op, params, picks)
        self._make_sensible(operation, params, picks)
        request = self._build(op, params, picks)
        if mutate is None:
            mutate = rng.random() < 0.66
        if mutate:
            for _ in range(rng.choices((1, 2, 3), (70, 20, 10))[0]):
                self._mutate(op, request)
            self._finish(op, request)
        return request

    def _link(self, op: botocore.model.OperationModel, params: dict, picks: dict) -> None:
        """Point identifiers of resources that live under a parent (a change request under its collaboration, an
        analysis rule's type under its table) at ones of the parent named in the same request most of the time,
        or the parent at the child's; then say what each is: linked (it is there), mismatch (it exists elsewhere),
        random (it does not exist), unlinked (no such type under that parent)."""
        rng, members = self.rng, op.input_shape.members
        for name, member in members.items():
            resource = BY_SHAPE.get(member.name)
            if resource is None or name not in params or not resource.scope:
                continue
            scope = [s for s in resource.scope if s in members and s in params]
            if not scope or (resource.typed and member.serialization.get("location") != "uri"):
                continue
            entries = [e for e in self.pools.entries(member.name) if not e["gone"]]
            if self._deleting:
                entries = [e for e in entries if not e.get("pinned")]
            matching = [e for e in entries if all(e["scope"].get(s) == params[s] for s in scope)]
            roll = rng.random()
            if matching and roll < 0.7:
                params[name] = rng.choice(matching)["id"]
            elif entries and roll < (0.85 if matching else 0.6):
                chosen = rng.choice(entries)
                params[name] = chosen["id"]
                for s in scope:  # the parent follows the child
                    params[s] = chosen["scope"][s]
                    picks[s] = self.pools.kind_of(members[s].name, params[s])
            found = [e for e in entries if e["id"] == params[name]]
            if any(all(e["scope"].get(s) == params[s] for s in scope) for e in found):
                picks[name] = "linked"
            elif resource.typed:
                picks[name] = "unlinked"
            else:
                picks[name] = "mismatch" if found else "random"

    def _make_sensible(self, operation: str, params: dict, picks: dict) -> None:
        """Nudge valid-by-model inputs towards valid-by-behaviour ones, so that many calls succeed."""
        if operation.startswith("List") and "nextToken" in params and self.rng.random() < 0.5:
            params.pop("nextToken")
        nudge = NUDGES.get(operation)
        if nudge is not None:
            nudge(self, params, picks)

    # Nudges, per operation. Each gets the generated params (identifiers already picked and linked) and may set
    # self._verdict when it knows the outcome the documented behaviour implies.

    def _nudge_create_collaboration(self, params, picks):
        rng = self.rng
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

    def _nudge_create_membership(self, params, picks):
        if self.rng.random() < 0.8:
            for key in ("paymentConfiguration", "isMetricsEnabled"):
                params.pop(key, None)

    def _nudge_update_membership(self, params, picks):
        if self.rng.random() < 0.8:
            params.pop("membershipPaymentConfiguration", None)

    def _nudge_delete_member(self, params, picks):
        rng = self.rng
        with_members = [e for e in self.pools.entries("CollaborationIdentifier")
                        if e["pick"] == "own" and not e["gone"] and e.get("members")]
        if with_members and rng.random() < 0.4:  # one of the caller's own collaborations that has members left
            params["collaborationIdentifier"], picks["collaborationIdentifier"] = rng.choice(with_members)["id"], "own"
        params["accountId"] = self.pools.member_account(rng, params["collaborationIdentifier"])

    # -- configured tables

    def _nudge_create_configured_table(self, params, picks):
        sure = self._table_reference(params, picks)
        sure = self._analysis_methods(params) and sure
        if sure and _tags_ok(params.get("tags")):
            self._verdict = "ok"

    def _nudge_update_configured_table(self, params, picks):
        rng = self.rng
        table = self.pools.entry("ConfiguredTableIdentifier", params["configuredTableIdentifier"])
        data = table["data"] if table else {}
        if "tableReference" in params or "allowedColumns" in params:
            if rng.random() < 0.7 and data.get("tableReference"):
                params["tableReference"] = copy.deepcopy(data["tableReference"])  # the same table, other columns
                if "glue" in data["tableReference"]:
                    entry = self._catalog_entry(data["tableReference"]["glue"])
                    columns = entry["columns"] if entry else data.get("allowedColumns", [])
                else:
                    columns = data.get("allowedColumns", [])
                # Keep the columns the table's rule may use (all the current ones), add others.
                kept = list(data.get("allowedColumns", []))
                params["allowedColumns"] = kept + [c for c in columns if c not in kept and rng.random() < 0.5]
            else:
                self._table_reference(params, picks)
        if "analysisMethod" in params or "selectedAnalysisMethods" in params:
            self._analysis_methods(params)

    def _catalog_entry(self, glue: dict) -> dict | None:
        return next((e for e in self.pools.catalog if e["database"] == str(glue.get("databaseName")).lower()
                     and e["table"] == str(glue.get("tableName")).lower()), None)

    def _table_reference(self, params: dict, picks: dict) -> bool:
        """A table reference and allowed columns that fit: mostly a table of the caller's catalog with some of its
        real columns, sometimes a table only others have; Snowflake columns from its schema. True when the
        reference is certainly good (a readable table of the caller's own catalog, real columns)."""
        rng, pools = self.rng, self.pools
        roll = rng.random()
        if pools.catalog and roll < 0.55:
            entry = rng.choice(pools.catalog)
            glue = {"databaseName": _recase(rng, entry["database"]), "tableName": _recase(rng, entry["table"])}
            if rng.random() < 0.3:  # the caller's catalog entries are for any region
                glue["region"] = rng.choice((REGION, "eu-west-1"))
            params["tableReference"] = {"glue": glue}
            columns = entry["columns"]
            params["allowedColumns"] = rng.sample(columns, rng.randint(1, len(columns)))
            if not entry.get("readable", True):
                picks["tableReference"] = "unreadable"
            return entry.get("readable", True)
        if pools.foreign_catalog and roll < 0.65:
            database, table = rng.choice(pools.foreign_catalog)
            params["tableReference"] = {"glue": {"databaseName": database, "tableName": table}}
            picks["tableReference"] = "foreign"
            return False
        if "tableReference" not in params:
            params["tableReference"] = self.valid(MODEL.shape_for("TableReference"))
        reference = params["tableReference"]
        kind = next(iter(reference))
        if kind == "glue":
            picks["tableReference"] = "random"  # a name the caller's catalog does not hold
        columns = list(dict.fromkeys(params.get("allowedColumns") or ["c"]))
        if kind == "snowflake" and rng.random() < 0.85:
            schema = [c["columnName"] for c in reference["snowflake"]["tableSchema"].get("v1") or []]
            columns = list(dict.fromkeys(schema)) or columns
            columns = rng.sample(columns, rng.randint(1, len(columns)))
        params["allowedColumns"] = columns
        return False

    def _analysis_methods(self, params: dict) -> bool:
        """selectedAnalysisMethods, when given, are both methods with MULTIPLE (docs/behaviour.md)."""
        if "selectedAnalysisMethods" not in params:
            return True
        if self.rng.random() < 0.85:
            params["selectedAnalysisMethods"] = self.rng.sample(["DIRECT_QUERY", "DIRECT_JOB"], 2)
            params["analysisMethod"] = "MULTIPLE"
            return True
        return False

    def _nudge_create_analysis_rule(self, params, picks):
        table_id = params["configuredTableIdentifier"]
        table = self.pools.entry("ConfiguredTableIdentifier", table_id)
        has_rule = any(e["scope"].get("configuredTableIdentifier") == table_id
                       for e in self.pools.entries("ConfiguredTableAnalysisRuleType"))
        if table is not None and table["pick"] == "own" and "glue" not in table["data"].get("tableReference", {}) \
                and self.rng.random() < 0.8:
            params["analysisRuleType"] = "CUSTOM"  # non-S3 tables: custom rules only
        sure = self._policy(params, table)
        if table is not None and table["pick"] == "own":
            if has_rule:
                self._verdict = "reject"  # one rule per table (docs/behaviour.md)
            elif sure:
                self._verdict = "ok"

    def _nudge_update_analysis_rule(self, params, picks):
        table = self.pools.entry("ConfiguredTableIdentifier", params["configuredTableIdentifier"])
        if self._policy(params, table) and table is not None and table["pick"] == "own" \
                and picks.get("analysisRuleType") == "linked":
            self._verdict = "ok"

    def _policy(self, params: dict, table: dict | None) -> bool:
        """An analysis rule policy of the rule's type over the table's allowed columns; True when it certainly
        satisfies every documented rule for that table."""
        rng = self.rng
        data = table["data"] if table else {}
        column_shape = MODEL.shape_for("AnalysisRuleColumnName")
        columns = [c for c in data.get("allowedColumns", []) if _fits(column_shape, c)]
        if not columns or rng.random() < 0.1:
            return False
        rule_type = params["analysisRuleType"]
        glue = "glue" in data.get("tableReference", {})
        member = {"AGGREGATION": "aggregation", "LIST": "list", "CUSTOM": "custom"}[rule_type]
        v1 = MODEL.shape_for("ConfiguredTableAnalysisRulePolicyV1")
        body = self.valid(v1.members[member])

        def sample(pool: list, lo: int, hi: int) -> list:
            return rng.sample(pool, rng.randint(min(lo, len(pool)), min(hi, len(pool))))

        if rule_type == "AGGREGATION":
            for aggregate in body["aggregateColumns"]:
                aggregate["columnNames"] = sample(columns, 1, 2)
            body["joinColumns"] = sample(columns, 0, 2)
            used = {c for a in body["aggregateColumns"] for c in a["columnNames"]} | set(body["joinColumns"])
            body["dimensionColumns"] = sample([c for c in columns if c not in used], 0, 2)
            if "joinRequired" in body and not body["joinColumns"]:
                del body["joinRequired"]
            if "additionalAnalyses" in body:
                body["additionalAnalyses"] = "NOT_ALLOWED"
            for constraint in body["outputConstraints"]:
                constraint["columnName"] = rng.choice(columns)
        elif rule_type == "LIST":
            body["joinColumns"] = sample(columns, 1, 2)
            body["listColumns"] = sample(columns, 0, 3)
        else:
            if rng.random() < 0.6:
                body["allowedAnalyses"] = sample(["ANY_QUERY", "ANY_JOB"], 1, 2)
                body["allowedAnalysisProviders"] = list(dict.fromkeys(
                    "".join(rng.choice(string.digits) for _ in range(12)) for _ in range(rng.randint(1, 2))))
            else:
                body["allowedAnalyses"] = list(dict.fromkeys(self._template_arn() for _ in range(rng.randint(0, 2))))
                body.pop("allowedAnalysisProviders", None)
            if "disallowedOutputColumns" in body:
                body["disallowedOutputColumns"] = sample(columns, 0, 2)
            if "differentialPrivacy" in body:
                if glue:
                    body["differentialPrivacy"] = {"columns": [{"name": rng.choice(columns)}]}
                else:
                    del body["differentialPrivacy"]
            self._custom_controls(body, columns, sample)
            for key in ("allowedResultReceivers", "allowedAdditionalAnalyses"):
                if key in body:
                    body[key] = list(dict.fromkeys(body[key]))
        params["analysisRulePolicy"] = {"v1": {member: body}}
        return glue or rule_type == "CUSTOM"

    def _custom_controls(self, body: dict, columns: list[str], sample) -> None:
        """aggregationThresholds and comparisonControls as a valid rule has them: never with differential privacy
        or a jobs-only rule; columns of the table; identity columns not compared with literals."""
        rng = self.rng
        if "differentialPrivacy" in body or set(body["allowedAnalyses"]) == {"ANY_JOB"}:
            body.pop("aggregationThresholds", None)
            body.pop("comparisonControls", None)
            return
        identities: set[str] = set()
        for threshold in body.get("aggregationThresholds") or []:
            threshold["identityColumns"] = [rng.choice(columns)]
            identities.update(threshold["identityColumns"])
            overrides = {o["outputColumnName"]: o for o in threshold.get("outputColumnThresholds") or []}
            for override in overrides.values():
                if override["minimumIdentityCount"] == 1:
                    override["minimumIdentityCount"] = 2
            if "outputColumnThresholds" in threshold:
                threshold["outputColumnThresholds"] = list(overrides.values())
        if "comparisonControls" in body:
            literal = [c for c in columns if c not in identities]
            body["comparisonControls"] = {"allowedLiteralComparisonColumns": sample(literal, 0, 2),
                                          "allowedColumnComparisonColumns": sample(columns, 0, 2)}

    def _template_arn(self) -> str:
        shape = MODEL.shape_for("AnalysisTemplateArnOrQueryWildcard")
        while True:
            value = self._patterned(shape)
            if value.startswith("arn:"):
                return value

    # -- change requests

    def _nudge_create_change_request(self, params, picks):
        """1-3 changes that can be made: invitations of accounts that are not members, a results ability for an
        invited member, one change of the auto-approved types; abilities [] or [CAN_RECEIVE_RESULTS]."""
        rng, pools = self.rng, self.pools
        if rng.random() < 0.15:
            return  # as generated: mostly refused, for the checks' sake
        collaboration = pools.entry("CollaborationIdentifier", params["collaborationIdentifier"])
        members = set(collaboration.get("members", [])) if collaboration else set()
        changes, used, collaboration_change = [], {pools.account_id}, False
        for _ in range(rng.randint(1, 3)):
            if rng.random() < 0.8 or collaboration_change:
                existing = members - used
                if existing and rng.random() < 0.3:
                    account, invite = rng.choice(sorted(existing)), False
                else:
                    account, invite = pools.invitee(rng, used | members), True
                if account is None:
                    continue
                used.add(account)
                spec = {"accountId": account, "memberAbilities": rng.choice(([], ["CAN_RECEIVE_RESULTS"]))}
                if invite:
                    spec["displayName"] = _text(rng, 1, 30)
                changes.append({"specificationType": "MEMBER", "specification": {"member": spec}})
            else:
                collaboration_change = True
                types = list(MODEL.shape_for("AutoApprovedChangeType").enum)
                changes.append({"specificationType": "COLLABORATION", "specification": {"collaboration": {
                    "autoApprovedChangeTypes": rng.sample(types, rng.randint(0, len(types)))}}})
        if changes:
            params["changes"] = changes

    def _nudge_update_change_request(self, params, picks):
        """Mostly an action the caller may take: the creator cancels or commits (an APPROVED request, most of the
        time one that still is), others vote."""
        rng = self.rng
        if rng.random() >= 0.8:
            return
        creator = picks.get("collaborationIdentifier") == "own"
        if creator and picks.get("changeRequestIdentifier") == "linked" and rng.random() < 0.7:
            cid = params["collaborationIdentifier"]
            open_ones = [e for e in self.pools.entries("CollaborationChangeRequestIdentifier")
                         if e["scope"].get("collaborationIdentifier") == cid
                         and e["data"].get("status") in ("PENDING", "APPROVED")]
            if open_ones:
                chosen = rng.choice(open_ones)
                params["changeRequestIdentifier"] = chosen["id"]
                params["action"] = "COMMIT" if chosen["data"]["status"] == "APPROVED" and rng.random() < 0.7 \
                    else "CANCEL"
                return
        params["action"] = rng.choice(("CANCEL", "COMMIT", "COMMIT", "APPROVE") if creator
                                      else ("APPROVE", "DENY", "APPROVE", "CANCEL"))

    # -- configured table associations and schemas

    def _table_rule_types(self, association: dict) -> list[str]:
        """The analysis rule types of the configured table behind an association (as far as the pools know)."""
        table_id = association["data"].get("configuredTableId")
        return [e["id"] for e in self.pools.entries("ConfiguredTableAnalysisRuleType")
                if e["scope"].get("configuredTableIdentifier") == table_id]

    def _association_policy(self, params: dict, rule_type: str) -> None:
        """A collaboration analysis rule of that type: no receivers or additional analyses named, mostly (which
        accounts may receive results depends on the collaboration)."""
        body = {}
        if self.rng.random() < 0.5:
            body["allowedResultReceivers"] = []
        if rule_type != "AGGREGATION" and self.rng.random() < 0.3:
            body["allowedAdditionalAnalyses"] = []
        params["analysisRulePolicy"] = {"v1": {rule_type.lower(): body}}

    def _nudge_create_association(self, params, picks):
        """Mostly one of the caller's tables not yet associated, through one of its ACTIVE memberships."""
        rng, pools = self.rng, self.pools
        if rng.random() >= 0.7:
            return
        memberships = [e for e in pools.entries("MembershipIdentifier")
                       if e["pick"] == "own" and not e["gone"] and e["data"].get("status", "ACTIVE") == "ACTIVE"]
        tables = [e for e in pools.entries("ConfiguredTableIdentifier") if e["pick"] == "own" and not e["gone"]]
        if not memberships or not tables:
            return
        membership = rng.choice(memberships)
        taken = {e["data"].get("configuredTableId") for e in pools.entries("ConfiguredTableAssociationIdentifier")
                 if not e["gone"] and e["scope"].get("membershipIdentifier") == membership["id"]}
        free = [t for t in tables if t["id"] not in taken]
        ruled = {e["scope"].get("configuredTableIdentifier") for e in pools.entries("ConfiguredTableAnalysisRuleType")}
        if any(t["id"] in ruled for t in free) and rng.random() < 0.7:  # its collaboration rule needs the table's
            free = [t for t in free if t["id"] in ruled]
        if free:
            params["membershipIdentifier"], picks["membershipIdentifier"] = membership["id"], "own"
            params["configuredTableIdentifier"], picks["configuredTableIdentifier"] = rng.choice(free)["id"], "own"

    def _nudge_create_association_rule(self, params, picks):
        rng, pools = self.rng, self.pools
        ruled = {e["scope"].get("configuredTableAssociationIdentifier")
                 for e in pools.entries("ConfiguredTableAssociationAnalysisRuleType")}
        fit = [e for e in pools.entries("ConfiguredTableAssociationIdentifier")
               if e["pick"] == "own" and not e["gone"] and e["id"] not in ruled and self._table_rule_types(e)]
        if fit and rng.random() < 0.6:  # one without a rule yet, over a table that has one
            chosen = rng.choice(fit)
            params["configuredTableAssociationIdentifier"], picks["configuredTableAssociationIdentifier"] = \
                chosen["id"], "linked"
            params["membershipIdentifier"] = chosen["scope"]["membershipIdentifier"]
            picks["membershipIdentifier"] = pools.kind_of("MembershipIdentifier", params["membershipIdentifier"])
        association = pools.entry("ConfiguredTableAssociationIdentifier",
                                  params["configuredTableAssociationIdentifier"])
        if association is None or rng.random() < 0.15:
            return
        types = self._table_rule_types(association)  # it must be the type of the table's own rule
        params["analysisRuleType"] = types[0] if types else self.rng.choice(("AGGREGATION", "LIST", "CUSTOM"))
        self._association_policy(params, params["analysisRuleType"])

    def _nudge_update_association_rule(self, params, picks):
        if self.rng.random() < 0.85:
            self._association_policy(params, params["analysisRuleType"])

    def _schema(self, params: dict, picks: dict) -> dict | None:
        """A known association (a schema of its collaboration), with the request's collaboration set to its."""
        def collaboration_of(association):
            membership = self.pools.entry("MembershipIdentifier", association["scope"].get("membershipIdentifier"))
            return membership["data"].get("collaborationId") if membership else None

        associations = [e for e in self.pools.entries("ConfiguredTableAssociationIdentifier")
                        if not e["gone"] and e["data"].get("name") and collaboration_of(e)]
        if not associations or self.rng.random() < 0.3:
            return None
        association = self.rng.choice(associations)
        params["collaborationIdentifier"] = collaboration_of(association)
        picks["collaborationIdentifier"] = self.pools.kind_of("CollaborationIdentifier",
                                                              params["collaborationIdentifier"])
        return association

    def _schema_rule_type(self, association: dict) -> str:
        types = self._table_rule_types(association)
        return types[0] if types and self.rng.random() < 0.8 else self.rng.choice(("AGGREGATION", "LIST", "CUSTOM"))

    def _nudge_get_schema(self, params, picks):
        association = self._schema(params, picks)
        if association is not None:
            params["name"] = _recase(self.rng, association["data"]["name"])

    def _nudge_get_schema_analysis_rule(self, params, picks):
        association = self._schema(params, picks)
        if association is not None:
            params["name"] = _recase(self.rng, association["data"]["name"])
            params["type"] = self._schema_rule_type(association)

    def _nudge_batch_get_schema(self, params, picks):
        association = self._schema(params, picks)
        if association is not None:
            params["names"] = [association["data"]["name"]] + params["names"][: self.rng.randint(0, 2)]

    def _nudge_batch_get_schema_analysis_rule(self, params, picks):
        association = self._schema(params, picks)
        if association is not None:
            request = {"name": association["data"]["name"], "type": self._schema_rule_type(association)}
            params["schemaAnalysisRuleRequests"] = [request] + params["schemaAnalysisRuleRequests"][
                : self.rng.randint(0, 2)]

    # -- analysis templates

    def _own_active_membership(self) -> dict | None:
        memberships = [e for e in self.pools.entries("MembershipIdentifier")
                       if e["pick"] == "own" and not e["gone"] and e["data"].get("status", "ACTIVE") == "ACTIVE"]
        return self.rng.choice(memberships) if memberships else None

    def _nudge_create_analysis_template(self, params, picks):
        """A SQL template in an ACTIVE membership of the caller's: SELECT 1, or a count over one of the
        collaboration's relations (an association of the caller's in that membership, as far as the pools know)."""
        rng = self.rng
        if rng.random() >= 0.8:
            return
        membership = self._own_active_membership()
        if membership is not None and rng.random() < 0.7:
            params["membershipIdentifier"], picks["membershipIdentifier"] = membership["id"], "own"
        names = [e["data"]["name"] for e in self.pools.entries("ConfiguredTableAssociationIdentifier")
                 if not e["gone"] and e["scope"].get("membershipIdentifier") == params["membershipIdentifier"]
                 and e["data"].get("name")]
        sql = f"SELECT COUNT(*) FROM {rng.choice(names)}" if names and rng.random() < 0.7 else "SELECT 1"
        params.update(format="SQL", source={"text": sql})
        for key in ("analysisParameters", "schema"):
            params.pop(key, None)

    def _nudge_start_protected_query(self, params, picks):
        """SQL in an ACTIVE membership of the caller's where it can query and receive results: SELECT 1 or a count
        over one of its associations (refused or run, both answer 200), results to its own S3 location."""
        rng = self.rng
        if rng.random() >= 0.8:
            return
        memberships = [e for e in self.pools.entries("MembershipIdentifier")
                       if e["pick"] == "own" and not e["gone"] and e["data"].get("status", "ACTIVE") == "ACTIVE"
                       and {"CAN_QUERY", "CAN_RECEIVE_RESULTS"} <= set(e["data"].get("memberAbilities") or [])]
        if not memberships:
            return
        membership = rng.choice(memberships)
        params["membershipIdentifier"], picks["membershipIdentifier"] = membership["id"], "own"
        names = [e["data"]["name"] for e in self.pools.entries("ConfiguredTableAssociationIdentifier")
                 if not e["gone"] and e["scope"].get("membershipIdentifier") == membership["id"]
                 and e["data"].get("name")]
        sql = f"SELECT COUNT(*) FROM {rng.choice(names)}" if names and rng.random() < 0.7 else "SELECT 1"
        params.update(type="SQL", sqlParameters={"queryString": sql}, resultConfiguration={
            "outputConfiguration": {"s3": {"bucket": "fuzz-results", "resultFormat": "CSV"}}})
        for key in ("queryComputePayerAccountId", "computeConfiguration"):
            params.pop(key, None)

    def _nudge_create_audience_model_association(self, params, picks):
        """One of the caller's own configured audience models (its account, the region served), in an ACTIVE
        membership of its own."""
        rng = self.rng
        if rng.random() >= 0.8:
            return
        params["configuredAudienceModelArn"] = (f"arn:aws:cleanrooms-ml:{REGION}:{self.pools.account_id}:"
                                                f"configured-audience-model/fuzz-{rng.randrange(10 ** 9)}")
        membership = self._own_active_membership()
        if membership is not None and rng.random() < 0.7:
            params["membershipIdentifier"], picks["membershipIdentifier"] = membership["id"], "own"

    def _nudge_get_collaboration_audience_model_association(self, params, picks):
        """An association the pools know, asked for in its own collaboration."""
        known = [e for e in self.pools.entries("ConfiguredAudienceModelAssociationIdentifier")
                 if not e["gone"] and e["data"].get("collaborationId")]
        if not known or self.rng.random() < 0.3:
            return
        association = self.rng.choice(known)
        params["configuredAudienceModelAssociationIdentifier"] = association["id"]
        picks["configuredAudienceModelAssociationIdentifier"] = self.pools.kind_of(
            "ConfiguredAudienceModelAssociationIdentifier", association["id"])
        params["collaborationIdentifier"] = association["data"]["collaborationId"]
        picks["collaborationIdentifier"] = self.pools.kind_of("CollaborationIdentifier",
                                                              params["collaborationIdentifier"])

    def _nudge_start_analysis_log_export(self, params, picks):
        """A query the caller ran, exported from its membership (it succeeds once the query has ended after
        running, which the fuzz does not control)."""
        rng = self.rng
        if rng.random() >= 0.8:
            return
        queries = [e for e in self.pools.entries("ProtectedQueryIdentifier")
                   if e["pick"] == "own" and e["scope"].get("membershipIdentifier")]
        if not queries:
            return
        query = rng.choice(queries)
        params["membershipIdentifier"], picks["membershipIdentifier"] = query["scope"]["membershipIdentifier"], "own"
        params["analysisId"] = query["id"]
        params["resultConfiguration"] = {"outputConfiguration": {"s3": {"bucket": "fuzz-logs"}}}

    # -- intermediate tables

    def _nudge_create_intermediate_table(self, params, picks):
        """A stored SQL query in an ACTIVE membership of the caller's where it can query: a named count over one of
        its associations there (as far as the pools know), or SELECT 1 (refused when populated: no table)."""
        rng = self.rng
        if rng.random() >= 0.8:
            return
        memberships = [e for e in self.pools.entries("MembershipIdentifier")
                       if e["pick"] == "own" and not e["gone"] and e["data"].get("status", "ACTIVE") == "ACTIVE"
                       and "CAN_QUERY" in set(e["data"].get("memberAbilities") or [])]
        if not memberships:
            return
        membership = rng.choice(memberships)
        params["membershipIdentifier"], picks["membershipIdentifier"] = membership["id"], "own"
        names = [e["data"]["name"] for e in self.pools.entries("ConfiguredTableAssociationIdentifier")
                 if not e["gone"] and e["scope"].get("membershipIdentifier") == membership["id"]
                 and e["data"].get("name")]
        sql = f"SELECT COUNT(*) AS n FROM {rng.choice(names)}" if names and rng.random() < 0.7 else "SELECT 1"
        params["populationAnalysisConfiguration"] = {"sqlParameters": {"queryString": sql}}
        params["name"] = f"it_{uuid.UUID(int=rng.getrandbits(128)).hex[:12]}"

    def _own_intermediate_table(self, params, picks, *, with_rule: bool = False) -> None:
        """Mostly one of the caller's live intermediate tables, with its membership (one with a rule, if asked and
        the pools know one)."""
        tables = [e for e in self.pools.entries("IntermediateTableIdentifier")
                  if not e["gone"] and e["scope"].get("membershipIdentifier")
                  and self.pools.kind_of("MembershipIdentifier", e["scope"]["membershipIdentifier"]) == "own"]
        if with_rule:
            ruled = {e["scope"].get("intermediateTableIdentifier")
                     for e in self.pools.entries("IntermediateTableAnalysisRuleType") if not e["gone"]}
            tables = [e for e in tables if e["id"] in ruled] or tables
        if not tables or self.rng.random() >= 0.7:
            return
        table = self.rng.choice(tables)
        params["intermediateTableIdentifier"], picks["intermediateTableIdentifier"] = table["id"], "own"
        params["membershipIdentifier"], picks["membershipIdentifier"] = table["scope"]["membershipIdentifier"], "own"
        if "analysisRuleType" in picks:  # linked to the old target: judge it against the new one
            known = [e for e in self.pools.entries("IntermediateTableAnalysisRuleType") if not e["gone"]
                     and e["id"] == params.get("analysisRuleType")
                     and e["scope"].get("intermediateTableIdentifier") == table["id"]]
            if known:
                picks["analysisRuleType"] = "linked"
            else:
                picks.pop("analysisRuleType")  # the pools may not know of its rule: either outcome

    def _nudge_intermediate_table_rule_target(self, params, picks):
        self._own_intermediate_table(params, picks, with_rule=True)

    def _nudge_intermediate_table_rule(self, params, picks, with_rule: bool = False):
        """A CUSTOM rule the caller itself may query under (no differential privacy, no column controls, which
        need the populated schema)."""
        self._own_intermediate_table(params, picks, with_rule=with_rule)
        if self.rng.random() >= 0.8:
            return
        params["analysisRulePolicy"] = {"v1": {"custom": {"allowedAnalyses": ["ANY_QUERY"],
                                                          "allowedAnalysisProviders": [self.pools.account_id]}}}

    def _nudge_populate_intermediate_table(self, params, picks):
        self._own_intermediate_table(params, picks)
        if self.rng.random() >= 0.8:
            return
        for key in ("parameters", "computeConfiguration", "analysisPayerAccountId"):
            params.pop(key, None)

    def _nudge_update_protected_query(self, params, picks):
        params["targetStatus"] = "CANCELLED"

    def _collaboration_template(self, params, picks) -> dict | None:
        """A template the pools know, with the request's collaboration set to the template's."""
        templates = [e for e in self.pools.entries("AnalysisTemplateIdentifier")
                     if not e["gone"] and e.get("arn") and e["data"].get("collaborationId")]
        if not templates or self.rng.random() < 0.3:
            return None
        template = self.rng.choice(templates)
        params["collaborationIdentifier"] = template["data"]["collaborationId"]
        picks["collaborationIdentifier"] = self.pools.kind_of("CollaborationIdentifier",
                                                              params["collaborationIdentifier"])
        return template

    def _nudge_get_collaboration_template(self, params, picks):
        template = self._collaboration_template(params, picks)
        if template is not None:
            params["analysisTemplateArn"] = template["arn"]

    def _nudge_batch_get_collaboration_template(self, params, picks):
        template = self._collaboration_template(params, picks)
        if template is not None:
            params["analysisTemplateArns"] = [template["arn"]] + params["analysisTemplateArns"][
                : self.rng.randint(0, 2)]

    # -- privacy budget templates

    def _nudge_create_privacy_budget_template(self, params, picks):
        """Mostly an access budget on one of the caller's own associations, through its membership (a differential
        privacy template needs a table with differential privacy, which the pools rarely know of)."""
        rng, pools = self.rng, self.pools
        if rng.random() >= 0.8:
            return
        associations = [e for e in pools.entries("ConfiguredTableAssociationIdentifier")
                        if e["pick"] == "own" and not e["gone"] and e["scope"].get("membershipIdentifier")]
        if not associations:
            return
        association = rng.choice(associations)
        membership_id = association["scope"]["membershipIdentifier"]
        params["membershipIdentifier"] = membership_id
        picks["membershipIdentifier"] = pools.kind_of("MembershipIdentifier", membership_id)
        arn = (f"arn:aws:cleanrooms:{REGION}:{pools.account_id}:membership/{membership_id}/"
               f"configuredtableassociation/{association['id']}")
        budget_parameters = [{"type": "LIFETIME", "budget": rng.randint(0, 1_000_000)}]
        if rng.random() < 0.5:
            budget_parameters.append({"type": rng.choice(("CALENDAR_DAY", "CALENDAR_WEEK", "CALENDAR_MONTH")),
                                      "budget": rng.randint(0, 1000),
                                      "autoRefresh": rng.choice(("ENABLED", "DISABLED"))})
        params.update(privacyBudgetType="ACCESS_BUDGET",
                      parameters={"accessBudget": {"budgetParameters": budget_parameters, "resourceArn": arn}})
        params.pop("autoRefresh", None)

    def _nudge_update_privacy_budget_template(self, params, picks):
        """The template's own type, with parameters of that type (or none)."""
        template = self.pools.entry("PrivacyBudgetTemplateIdentifier", params["privacyBudgetTemplateIdentifier"])
        if template is None or self.rng.random() >= 0.85:
            return
        budget_type = template["data"].get("privacyBudgetType")
        if budget_type not in ("ACCESS_BUDGET", "DIFFERENTIAL_PRIVACY"):
            return
        params["privacyBudgetType"] = budget_type
        if self.rng.random() < 0.3:
            params.pop("parameters", None)
        elif budget_type == "ACCESS_BUDGET":
            params["parameters"] = {"accessBudget": {"budgetParameters": [
                {"type": "LIFETIME", "budget": self.rng.randint(0, 1_000_000)}]}}
        else:
            params["parameters"] = {"differentialPrivacy": {"epsilon": self.rng.randint(1, 20)}}

    def _nudge_get_collaboration_privacy_budget_template(self, params, picks):
        """A template the pools know, with the request's collaboration set to the template's."""
        templates = [e for e in self.pools.entries("PrivacyBudgetTemplateIdentifier")
                     if not e["gone"] and e["data"].get("collaborationId")]
        if not templates or self.rng.random() < 0.3:
            return
        template = self.rng.choice(templates)
        params["privacyBudgetTemplateIdentifier"] = template["id"]
        picks["privacyBudgetTemplateIdentifier"] = self.pools.kind_of("PrivacyBudgetTemplateIdentifier",
                                                                      template["id"])
        params["collaborationIdentifier"] = template["data"]["collaborationId"]
        picks["collaborationIdentifier"] = self.pools.kind_of("CollaborationIdentifier",
                                                              params["collaborationIdentifier"])

    # -- ID namespace associations and ID mapping tables

    def _nudge_create_id_namespace_association(self, params, picks):
        """One of the caller's locally defined ID namespaces, mostly in an ACTIVE membership of its own."""
        rng = self.rng
        if rng.random() >= 0.8 or not self.pools.id_namespaces or not isinstance(
                params.get("inputReferenceConfig"), dict):
            return
        membership = self._own_active_membership()
        if membership is not None and rng.random() < 0.7:
            params["membershipIdentifier"], picks["membershipIdentifier"] = membership["id"], "own"
        params["inputReferenceConfig"]["inputReferenceArn"] = rng.choice(self.pools.id_namespaces)

    def _nudge_get_collaboration_id_namespace_association(self, params, picks):
        """An association the pools know, with the request's collaboration set to the association's."""
        associations = [e for e in self.pools.entries("IdNamespaceAssociationIdentifier")
                        if not e["gone"] and e["data"].get("collaborationId")]
        if not associations or self.rng.random() < 0.3:
            return
        association = self.rng.choice(associations)
        params["idNamespaceAssociationIdentifier"] = association["id"]
        picks["idNamespaceAssociationIdentifier"] = self.pools.kind_of("IdNamespaceAssociationIdentifier",
                                                                       association["id"])
        params["collaborationIdentifier"] = association["data"]["collaborationId"]
        picks["collaborationIdentifier"] = self.pools.kind_of("CollaborationIdentifier",
                                                              params["collaborationIdentifier"])

    def _nudge_create_id_mapping_table(self, params, picks):
        """A workflow of the caller's whose namespaces are associated in the membership's collaboration."""
        rng = self.rng
        if rng.random() >= 0.8 or not self.pools.id_mapping_workflows or not isinstance(
                params.get("inputReferenceConfig"), dict):
            return
        membership_id, arn = rng.choice(self.pools.id_mapping_workflows)
        params["membershipIdentifier"] = membership_id
        picks["membershipIdentifier"] = self.pools.kind_of("MembershipIdentifier", membership_id)
        params["inputReferenceConfig"]["inputReferenceArn"] = arn

    def _nudge_populate_id_mapping_table(self, params, picks):
        """DELETE_ONLY needs Entity Resolution's deletion requests (docs/id-mapping.md): mostly not that."""
        self._nudge_id_mapping_table(params, picks)
        if self.rng.random() < 0.8:
            params["jobType"] = self.rng.choice(("BATCH", "INCREMENTAL"))

    def _nudge_id_mapping_table(self, params, picks, tables=None):
        """One of the caller's ID mapping tables, through its membership (the UUID shape is not pooled)."""
        tables = self.pools.id_mapping_tables if tables is None else tables
        if not tables or self.rng.random() < 0.3:
            return
        params["membershipIdentifier"], params["idMappingTableIdentifier"] = self.rng.choice(tables)
        picks["membershipIdentifier"] = self.pools.kind_of("MembershipIdentifier", params["membershipIdentifier"])
        picks["idMappingTableIdentifier"] = "own"

    def _nudge_delete_id_mapping_table(self, params, picks):
        self._nudge_id_mapping_table(params, picks, self.pools.deletable_id_mapping_tables)

    def _build(self, op: botocore.model.OperationModel, params: dict, picks: dict) -> Request:
        method, path, query, body = serialize(op, params)
        return Request(op.name, method, path, query, body, {}, ..., params,
                       self._expectation(op.name, params, picks), [], picks=picks, verdict=self._verdict)

    def _expectation(self, operation: str, params: dict, picks: dict) -> str | None:
        """What a valid-by-model request must do, judged from what it targets (not from the server's code)."""
        kinds = set(picks.values())
        idempotent = IDEMPOTENT_DELETES.get(operation)
        if idempotent and picks.get("membershipIdentifier") == "own" and not (
                {kind for label, kind in picks.items() if label != idempotent} & REJECT_PICKS):
            return None  # AWS: "The delete is idempotent": an id not (or no longer) in the membership is no error
        if kinds & REJECT_PICKS:
            return "reject"  # nobody sees what is not theirs, unknown ids do not exist, gone is gone
        if not _tags_ok(params.get("tags")):
            return "reject"  # docs/behaviour.md, Tags
        collaboration = picks.get("collaborationIdentifier")
        if operation in CREATOR_ONLY and collaboration != "own":
            return "reject"  # only the creator
        if operation == "UpdateCollaborationChangeRequest":
            if collaboration == "own" and params.get("action") in ("APPROVE", "DENY"):
                return "reject"  # the creator does not vote on its own requests
            if collaboration == "invited" and params.get("action") in ("CANCEL", "COMMIT"):
                return "reject"  # only the creator cancels and commits
        if "unlinked" in kinds and operation.startswith(("Get", "Update", "Delete")) \
                and kinds <= {"own", "linked", "unlinked"}:
            return "reject"  # the caller's own table has no rule of that type
        if self._verdict is not None:
            return self._verdict
        if "nextToken" in params:
            return None
        if operation.startswith("List") and not _labels(operation):
            return "ok"  # the caller's own resources
        if operation in OK_WHEN_OWN and kinds and kinds <= {"own", "linked"}:
            return "ok"
        return None

    # -- mutations -------------------------------------------------------------------------------------------

    def _slots(self, shape, value, path=()):
        """(path, shape, required, present, container) for every structure member, list item and map value. The
        member a union has set counts as required: without it the union has none."""
        if shape.type_name == "structure" and isinstance(value, dict):
            union = bool(shape.metadata.get("union"))
            for name, m in shape.members.items():
                present = name in value
                yield path + (name,), m, name in shape.required_members or (union and present), present, "structure"
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
            number = ["5", True, [1], {"a": 1}, "NaN"]
            others = {"string": [5, 1.5, True, ["x"], {"a": "b"}], "integer": number + [1.5], "long": number + [1.5],
                      "double": number, "float": number, "boolean": ["true", 1, 0, [True], {"a": True}, "false"],
                      "list": ["x", 5, {"a": "b"}, True], "map": ["x", 5, ["a", "b"], True],
                      "structure": ["x", 5, ["a"], True, 1.5], "timestamp": ["yesterday", True, [1], {"a": 1}],
                      "blob": [5, True, ["x"], {"a": "b"}]}
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
            raw = "".join(quote(c, safe="") if c not in _UNRESERVED else f"%{ord(c):02X}" if self.rng.random() < 0.5
                          else c for c in good)
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

    def _label_ok(self, shape, decoded: str, good: str) -> bool:
        if shape.name == "AccountId":
            return decoded.isascii() and bool(ACCOUNT_RE.fullmatch(decoded)) and decoded == good
        if decoded.lower() == good.lower() and not (shape.name in BY_SHAPE or shape.name in self.pools.ids
                                                    or shape.name.endswith("Arn")):
            return True  # a name in another case may name the same thing (schema names ignore case)
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
        # What body members pointed at no longer holds once they were mutated or the body replaced (a foreign
        # table reference set to null is no reference): judge the target again without them.
        body_members = {n for n in op.input_shape.members if self._domain(op, (n,)) == "body"}
        changed = body_members if "raw_body" in overrides else {p[0] for p in request.touched if p[0] in body_members}
        if changed & set(request.picks):
            saved, self._verdict = self._verdict, (request.verdict if request.verdict == "reject" else None)
            request.expect = self._expectation(op.name, request.params,
                                               {k: v for k, v in request.picks.items() if k not in changed})
            self._verdict = saved
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



CREATOR_ONLY = frozenset({"UpdateCollaboration", "DeleteCollaboration", "DeleteMember",
                          "CreateCollaborationChangeRequest"})
# Certain to succeed when every identifier is the caller's own (or linked to it) and nothing was mutated.
OK_WHEN_OWN = frozenset({"GetCollaboration", "ListMembers", "GetMembership", "ListTagsForResource",
                         "UpdateCollaboration", "GetConfiguredTable", "GetConfiguredTableAnalysisRule",
                         "ListCollaborationChangeRequests", "GetCollaborationChangeRequest"})
NUDGES = {
    "StartProtectedQuery": Generator._nudge_start_protected_query,
    "StartAnalysisLogExport": Generator._nudge_start_analysis_log_export,
    "CreateConfiguredAudienceModelAssociation": Generator._nudge_create_audience_model_association,
    "GetCollaborationConfiguredAudienceModelAssociation":
        Generator._nudge_get_collaboration_audience_model_association,
    "UpdateProtectedQuery": Generator._nudge_update_protected_query,
    "CreateIntermediateTable": Generator._nudge_create_intermediate_table,
    "CreateIntermediateTableAnalysisRule": Generator._nudge_intermediate_table_rule,
    "UpdateIntermediateTableAnalysisRule": lambda g, params, picks: g._nudge_intermediate_table_rule(
        params, picks, with_rule=True),
    "PopulateIntermediateTable": Generator._nudge_populate_intermediate_table,
    "GetIntermediateTableAnalysisRule": Generator._nudge_intermediate_table_rule_target,
    "DeleteIntermediateTableAnalysisRule": Generator._nudge_intermediate_table_rule_target,
    "CreateCollaboration": Generator._nudge_create_collaboration,
    "CreateMembership": Generator._nudge_create_membership,
    "UpdateMembership": Generator._nudge_update_membership,
    "DeleteMember": Generator._nudge_delete_member,
    "CreateConfiguredTable": Generator._nudge_create_configured_table,
    "UpdateConfiguredTable": Generator._nudge_update_configured_table,
    "CreateConfiguredTableAnalysisRule": Generator._nudge_create_analysis_rule,
    "UpdateConfiguredTableAnalysisRule": Generator._nudge_update_analysis_rule,
    "CreateCollaborationChangeRequest": Generator._nudge_create_change_request,
    "UpdateCollaborationChangeRequest": Generator._nudge_update_change_request,
    "CreateConfiguredTableAssociation": Generator._nudge_create_association,
    "CreateConfiguredTableAssociationAnalysisRule": Generator._nudge_create_association_rule,
    "UpdateConfiguredTableAssociationAnalysisRule": Generator._nudge_update_association_rule,
    "GetSchema": Generator._nudge_get_schema,
    "GetSchemaAnalysisRule": Generator._nudge_get_schema_analysis_rule,
    "BatchGetSchema": Generator._nudge_batch_get_schema,
    "BatchGetSchemaAnalysisRule": Generator._nudge_batch_get_schema_analysis_rule,
    "CreateAnalysisTemplate": Generator._nudge_create_analysis_template,
    "GetCollaborationAnalysisTemplate": Generator._nudge_get_collaboration_template,
    "BatchGetCollaborationAnalysisTemplate": Generator._nudge_batch_get_collaboration_template,
    "CreatePrivacyBudgetTemplate": Generator._nudge_create_privacy_budget_template,
    "UpdatePrivacyBudgetTemplate": Generator._nudge_update_privacy_budget_template,
    "GetCollaborationPrivacyBudgetTemplate": Generator._nudge_get_collaboration_privacy_budget_template,
    "CreateIdNamespaceAssociation": Generator._nudge_create_id_namespace_association,
    "GetCollaborationIdNamespaceAssociation": Generator._nudge_get_collaboration_id_namespace_association,
    "CreateIdMappingTable": Generator._nudge_create_id_mapping_table,
    "PopulateIdMappingTable": Generator._nudge_populate_id_mapping_table,
    "GetIdMappingTable": Generator._nudge_id_mapping_table,
    "UpdateIdMappingTable": Generator._nudge_id_mapping_table,
    "DeleteIdMappingTable": Generator._nudge_delete_id_mapping_table,
}


def _tags_ok(tags) -> bool:
    """docs/behaviour.md, Tags: no reserved keys, at most 50."""
    return not isinstance(tags, dict) or (len(tags) <= MAX_TAGS_PER_RESOURCE and not any(
        str(k).lower().startswith(RESERVED_TAG_PREFIX) for k in tags))


def _fits(shape: botocore.model.Shape, value: str) -> bool:
    meta = shape.metadata
    return meta.get("min", 0) <= len(value) <= meta.get("max", len(value)) and (
        "pattern" not in meta or patterngen.matches(meta["pattern"], value))


def _recase(rng: random.Random, name: str) -> str:
    """Glue names ignore case (docs/behaviour.md): the same name, its case changed now and then."""
    roll = rng.random()
    return name.upper() if roll < 0.15 else name.title() if roll < 0.25 else name


def pattern_problems(shape: botocore.model.Shape, value, path: str = "$") -> list[str]:
    """Strings that break their shape's pattern as the server enforces it (whole-value match), which the conformance
    checker's search semantics would let through."""
    kind, out = shape.type_name, []
    if kind == "structure" and isinstance(value, dict):
        for name, m in shape.members.items():
            if name in value:
                out += pattern_problems(m, value[name], f"{path}.{name}")
    elif kind == "list" and isinstance(value, list):
        for i, item in enumerate(value):
            out += pattern_problems(shape.member, item, f"{path}[{i}]")
    elif kind == "map" and isinstance(value, dict):
        for key, item in value.items():
            out += pattern_problems(shape.key, key, f"{path}<key>") + pattern_problems(shape.value, item,
                                                                                       f"{path}[{key!r}]")
    elif kind == "string" and isinstance(value, str) and "pattern" in shape.metadata \
            and not patterngen.matches(shape.metadata["pattern"], value):
        out.append(f"{path}: {value[:60]!r} does not match {shape.name}'s pattern as a whole")
    return out


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
