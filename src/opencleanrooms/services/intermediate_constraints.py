"""What intermediate tables inherit from their base tables, and what their own analysis rule may say.

Pure functions over rows and plans: the dependencies a population records (DIRECT, and INDIRECT through other
intermediate tables), the inherited constraints it captures (docs/behaviour.md, "Intermediate tables": the
strictest combination of the base tables' deferred controls, with their sources and column lineage), a table's
effective constraints (its own CUSTOM rule combined with what its active version inherited), and the checks of a
rule (multi-party tables can only make inherited controls stricter).
"""

from __future__ import annotations

import re

from opencleanrooms.services import analysis_rules, errors

# AWS: additional analyses "must be equal or more restrictive (REQUIRED > ALLOWED > NOT_ALLOWED)".
STRICTNESS = {"NOT_ALLOWED": 0, "ALLOWED": 1, "REQUIRED": 2}
_COLUMN_NAME = re.compile(r"[a-z0-9_](([a-z0-9_ ]+-)*([a-z0-9_ ]+))?")  # the model's AnalysisRuleColumnName


def column_name_ok(name: str) -> bool:
    """The model's AnalysisRuleColumnName: what an analysis rule (and so an intermediate table) can name."""
    return bool(_COLUMN_NAME.fullmatch(name)) and len(name) <= 127


def dependencies(names, rows: dict, extras: dict) -> list[dict]:
    """The base tables a population reads: DIRECT ones, and INDIRECT ones through intermediate tables."""
    found: dict[str, dict] = {}
    for name in names:
        if name in rows:
            row = rows[name]
            found[row["id"]] = {"id": row["id"], "name": name, "type": "TABLE", "parentType": "DIRECT",
                                "creatorAccountId": row["account_id"]}
        else:
            extra = extras[name]
            found[extra.id] = {"id": extra.id, "name": name, "type": extra.kind, "parentType": "DIRECT",
                               "creatorAccountId": extra.info.owner_account_id}
    for name in names:
        for dependency in (extras[name].dependencies if name in extras else ()):
            found.setdefault(dependency["id"], dict(dependency, parentType="INDIRECT"))
    return list(found.values())


def inherit(plan, rows: dict, extras: dict) -> dict:
    """IntermediateTableInheritedConstraints of a population: the strictest combination of its base tables'
    deferred controls, each with the tables it comes from."""
    receivers, additional, allowed_additional, sources_of = [], [], [], {}
    for name in plan.tables:
        if name in rows:
            row = rows[name]
            source = {"name": name, "id": row["id"], "type": "TABLE", "sourceAccountId": row["account_id"]}
            collaboration_rule = rule_body(row["rule_type"], row["rule_policy"])
            table_rule = rule_body(row["table_rule_type"], row["table_rule_policy"])
            values = {"allowedResultReceivers": collaboration_rule.get("allowedResultReceivers"),
                      "allowedAdditionalAnalyses": collaboration_rule.get("allowedAdditionalAnalyses"),
                      "additionalAnalyses": table_rule.get("additionalAnalyses")}
        else:
            extra = extras[name]
            source = {"name": name, "id": extra.id, "type": extra.kind,
                      "sourceAccountId": extra.info.owner_account_id}
            values = {key: (extra.constraints or {}).get(key) for key in
                      ("allowedResultReceivers", "allowedAdditionalAnalyses", "additionalAnalyses")}
        sources_of[name] = source
        if values["allowedResultReceivers"] is not None:
            receivers.append(dict(source, value=list(values["allowedResultReceivers"])))
        if values["allowedAdditionalAnalyses"] is not None:
            allowed_additional.append(dict(source, value=list(values["allowedAdditionalAnalyses"])))
        if values["additionalAnalyses"] is not None:
            additional.append(dict(source, value=values["additionalAnalyses"]))
    inherited: dict = {}
    if receivers:
        inherited["allowedResultReceivers"] = {"value": intersection(s["value"] for s in receivers),
                                               "sources": receivers}
    if allowed_additional:
        inherited["allowedAdditionalAnalyses"] = {"value": intersection(s["value"] for s in allowed_additional),
                                                  "sources": allowed_additional}
    if additional:
        inherited["additionalAnalyses"] = {"value": max((s["value"] for s in additional), key=STRICTNESS.get),
                                           "sources": additional}
    lineage = []
    for output, table, column in plan.deferred_columns:
        source = sources_of[table]
        entry = {"column": output.lower(), "sourceColumn": column, "sourceName": source["name"],
                 "sourceId": source["id"], "sourceType": source["type"], "sourceAccountId": source["sourceAccountId"]}
        if entry not in lineage:
            lineage.append(entry)
    if lineage:
        inherited["disallowedOutputColumns"] = {"value": sorted({e["column"] for e in lineage}),
                                                "columnLineage": lineage}
    return inherited


def rule_body(rule_type, policy_doc) -> dict:
    if not rule_type or not policy_doc:
        return {}
    return (policy_doc.get("v1") or {}).get(analysis_rules.POLICY_MEMBERS[rule_type]) or {}


def intersection(values) -> list:
    values = [list(v) for v in values]
    common = set(values[0]).intersection(*map(set, values[1:]))
    return [v for v in values[0] if v in common]


def own_rule(row) -> dict | None:
    if not row["rule_policy"]:
        return None
    return row["rule_policy"]["v1"]["custom"]


def effective(row, active) -> dict:
    """What a query on the table must respect beyond its own authorization: its own rule combined with the
    constraints its active version inherited."""
    own = own_rule(row) or {}
    inherited = (active["doc"].get("inheritedConstraints") or {}) if active else {}
    receivers = own.get("allowedResultReceivers")
    if "allowedResultReceivers" in inherited:
        base = inherited["allowedResultReceivers"]["value"]
        receivers = base if receivers is None else [a for a in receivers if a in base]
    disallowed = sorted(set(own.get("disallowedOutputColumns") or [])
                        | set((inherited.get("disallowedOutputColumns") or {}).get("value") or []))
    additional = [v for v in (own.get("additionalAnalyses"),
                              (inherited.get("additionalAnalyses") or {}).get("value")) if v]
    allowed_additional = [v for v in (own.get("allowedAdditionalAnalyses"),
                                      (inherited.get("allowedAdditionalAnalyses") or {}).get("value")) if v is not None]
    return {"allowedResultReceivers": receivers, "disallowedOutputColumns": disallowed,
            "additionalAnalyses": max(additional, key=STRICTNESS.get) if additional else None,
            "allowedAdditionalAnalyses": intersection(allowed_additional) if allowed_additional else None}


def check_rule(row, active, policy_doc: dict) -> None:
    """The rule's columns exist (once populated); DP is not offered here; a multi-party table's rule can only make
    the inherited controls stricter."""
    body = (policy_doc.get("v1") or {}).get("custom")
    if body is None:
        raise errors.validation("analysisRulePolicy.v1.custom is required.", field="analysisRulePolicy")
    if body.get("differentialPrivacy"):
        raise errors.invalid_configuration("Differential privacy is not supported on intermediate tables by this "
                                           "server.")
    analyses = body.get("allowedAnalyses") or []
    if not analyses:
        raise errors.validation("allowedAnalyses must list ANY_QUERY or analysis templates.",
                                field="analysisRulePolicy.v1.custom.allowedAnalyses")
    if "ANY_QUERY" in analyses and not body.get("allowedAnalysisProviders"):
        raise errors.validation("allowedAnalysisProviders is required when allowedAnalyses is ANY_QUERY.",
                                field="analysisRulePolicy.v1.custom.allowedAnalysisProviders")
    if active is None:
        return
    columns = {c for c, _ in active["doc"].get("columns") or []}
    named = set(body.get("disallowedOutputColumns") or [])
    for threshold in body.get("aggregationThresholds") or []:
        named |= set(threshold.get("identityColumns") or [])
        named |= {c["outputColumnName"] for c in threshold.get("outputColumnThresholds") or []}
    controls = body.get("comparisonControls") or {}
    named |= set(controls.get("allowedLiteralComparisonColumns") or []) | set(
        controls.get("allowedColumnComparisonColumns") or [])
    unknown = sorted(named - columns)
    if unknown:
        raise errors.invalid_configuration(f"The analysis rule names column(s) {', '.join(unknown)} that the "
                                           "intermediate table does not have.")
    if not any(d["creatorAccountId"] != row["account_id"] for d in active["doc"].get("dependencies") or []):
        return  # first-party: the owner has full control
    inherited = active["doc"].get("inheritedConstraints") or {}
    problems = []
    if "allowedResultReceivers" in inherited and "allowedResultReceivers" in body:
        extra = sorted(set(body["allowedResultReceivers"]) - set(inherited["allowedResultReceivers"]["value"]))
        if extra:
            problems.append(f"allowedResultReceivers adds {', '.join(extra)}, which the base tables do not allow")
    if "disallowedOutputColumns" in inherited:
        missing = sorted(set(inherited["disallowedOutputColumns"]["value"]) - set(body.get("disallowedOutputColumns")
                                                                                  or []))
        if missing:
            problems.append(f"disallowedOutputColumns must include {', '.join(missing)}")
    if "allowedAdditionalAnalyses" in inherited and "allowedAdditionalAnalyses" in body:
        extra = sorted(set(body["allowedAdditionalAnalyses"]) - set(inherited["allowedAdditionalAnalyses"]["value"]))
        if extra:
            problems.append("allowedAdditionalAnalyses lists analyses the base tables do not allow")
    if "additionalAnalyses" in inherited and "additionalAnalyses" in body:
        if STRICTNESS[body["additionalAnalyses"]] < STRICTNESS[inherited["additionalAnalyses"]["value"]]:
            problems.append(f"additionalAnalyses must be {inherited['additionalAnalyses']['value']} or stricter")
    if problems:
        raise errors.invalid_configuration("The intermediate table is populated from other members' tables, so its "
                                           "analysis rule can only make their controls stricter: "
                                           + "; ".join(problems) + ".")
