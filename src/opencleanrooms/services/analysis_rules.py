"""The semantic checks of a configured table's analysis rule policy, beyond what the model's constraints enforce.

Pure functions over request values, so the association and schema families can reuse them. Every failure is a
ValidationException naming the field at fault (paths as AWS writes them, list items 1-based). What each check
rests on (model documentation, user guide, or our choice where AWS is silent) is listed in docs/behaviour.md under
"Configured tables and analysis rules".
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from opencleanrooms.services import errors

# analysisRuleType -> the ConfiguredTableAnalysisRulePolicyV1 union member that holds its policy
POLICY_MEMBERS = {"AGGREGATION": "aggregation", "LIST": "list", "CUSTOM": "custom"}
ANY_ANALYSIS = frozenset({"ANY_QUERY", "ANY_JOB"})  # the wildcards allowed in a custom rule's allowedAnalyses
# Table reference kinds whose data sits in S3 (Glue); other sources support only custom rules.
S3_REFERENCES = frozenset({"glue"})
_POLICY_PATH = "analysisRulePolicy.v1"


def policy_body(rule_type: str, policy: dict, path: str = _POLICY_PATH) -> dict:
    """The rule's policy (the v1 union member), which must be the one its type names."""
    v1 = policy.get("v1") or {}
    member = POLICY_MEMBERS[rule_type]
    if member not in v1:
        given = next(iter(v1), None)
        raise errors.validation(
            f"The analysis rule type {rule_type} requires the policy {path}.{member}, but {path}.{given} was given.",
            field=path, field_message=f"Must be {path}.{member} for analysis rule type {rule_type}")
    return v1[member]


def columns_named(rule_type: str, body: dict, path: str = "") -> Iterator[tuple[str, str]]:
    """Every (field path, column) the policy names, in request order."""
    prefix = f"{path or _POLICY_PATH + '.' + POLICY_MEMBERS[rule_type]}."
    if rule_type == "AGGREGATION":
        for i, aggregate in enumerate(body.get("aggregateColumns") or [], 1):
            for column in aggregate.get("columnNames") or []:
                yield f"{prefix}aggregateColumns.{i}.member.columnNames", column
        for field in ("joinColumns", "dimensionColumns"):
            for column in body.get(field) or []:
                yield prefix + field, column
        for i, constraint in enumerate(body.get("outputConstraints") or [], 1):
            yield f"{prefix}outputConstraints.{i}.member.columnName", constraint["columnName"]
    elif rule_type == "LIST":
        for field in ("joinColumns", "listColumns"):
            for column in body.get(field) or []:
                yield prefix + field, column
    else:
        for column in body.get("disallowedOutputColumns") or []:
            yield prefix + "disallowedOutputColumns", column
        for i, column in enumerate((body.get("differentialPrivacy") or {}).get("columns") or [], 1):
            yield f"{prefix}differentialPrivacy.columns.{i}.member.name", column["name"]
        for i, threshold in enumerate(body.get("aggregationThresholds") or [], 1):
            for column in threshold.get("identityColumns") or []:
                yield f"{prefix}aggregationThresholds.{i}.member.identityColumns", column
        for field in ("allowedLiteralComparisonColumns", "allowedColumnComparisonColumns"):
            for column in (body.get("comparisonControls") or {}).get(field) or []:
                yield f"{prefix}comparisonControls.{field}", column


def columns_used(rule_type: str, policy: dict) -> set[str]:
    """The columns a stored rule names (all of which must stay allowed columns of its table)."""
    return {column for _, column in columns_named(rule_type, policy["v1"][POLICY_MEMBERS[rule_type]])}


def check_rule(rule_type: str, policy: dict, allowed_columns: Iterable[str], reference_kind: str) -> None:
    """Check a rule (as given to Create/UpdateConfiguredTableAnalysisRule) against its configured table: its
    allowed columns and the kind of its table reference (glue, snowflake, athena)."""
    body = policy_body(rule_type, policy)
    path = f"{_POLICY_PATH}.{POLICY_MEMBERS[rule_type]}"
    check_reference_kind(rule_type, reference_kind)
    _check_duplicates(rule_type, body, path)
    check_columns_allowed(rule_type, body, set(allowed_columns), path)
    if rule_type == "AGGREGATION":
        check_aggregation(body, path)
    elif rule_type == "CUSTOM":
        check_custom(body, path, reference_kind)
    # LIST: the model already requires a join column; the column checks above are all it needs.


def check_reference_kind(rule_type: str, reference_kind: str) -> None:
    """Configured tables over non-S3 sources (Snowflake, Athena) support only custom analysis rules."""
    if rule_type != "CUSTOM" and reference_kind not in S3_REFERENCES:
        raise errors.validation(
            f"Configured tables that reference {reference_kind} tables support only CUSTOM analysis rules, "
            f"not {rule_type}.", reason="INVALID_CONFIGURATION", field="analysisRuleType",
            field_message=f"Not supported for {reference_kind} table references")


def check_columns_allowed(rule_type: str, body: dict, allowed: set[str], path: str = "") -> None:
    """Every column the rule names must be one of the table's allowed columns."""
    missing: dict[str, list[str]] = {}
    for field, column in columns_named(rule_type, body, path):
        if column not in allowed:
            names = missing.setdefault(field, [])
            if column not in names:
                names.append(column)
    if missing:
        field, names = next(iter(missing.items()))
        everything = sorted({name for names in missing.values() for name in names})
        raise errors.validation(
            f"The analysis rule names columns that are not allowed columns of the configured table: "
            f"{', '.join(everything)}.", reason="INVALID_CONFIGURATION", field=field,
            field_message=f"Not allowed columns of the configured table: {', '.join(names)}")


def check_aggregation(body: dict, path: str) -> None:
    aggregate = {c for a in body["aggregateColumns"] for c in a["columnNames"]}
    join = set(body["joinColumns"])
    overlap = [c for c in body["dimensionColumns"] if c in aggregate or c in join]
    if overlap:
        raise errors.validation(
            f"Aggregate function columns and join columns cannot be dimension columns: {', '.join(overlap)}.",
            reason="INVALID_CONFIGURATION", field=f"{path}.dimensionColumns",
            field_message=f"Also aggregate or join columns: {', '.join(overlap)}")
    if body.get("joinRequired") == "QUERY_RUNNER" and not join:
        raise errors.validation(
            "joinRequired QUERY_RUNNER requires at least one join column.", reason="INVALID_CONFIGURATION",
            field=f"{path}.joinColumns", field_message="Must name at least one column when joinRequired is set")
    if body.get("additionalAnalyses", "NOT_ALLOWED") != "NOT_ALLOWED":
        raise errors.validation(
            "additionalAnalyses is supported only for the LIST and CUSTOM analysis rules; an AGGREGATION rule "
            "accepts only NOT_ALLOWED.", field=f"{path}.additionalAnalyses",
            field_message="Only NOT_ALLOWED is supported for AGGREGATION rules")


def check_custom(body: dict, path: str, reference_kind: str = "glue") -> None:
    analyses = body["allowedAnalyses"]
    wildcards = [a for a in analyses if a in ANY_ANALYSIS]
    templates = [a for a in analyses if a not in ANY_ANALYSIS]
    providers = body.get("allowedAnalysisProviders")
    if wildcards and templates:
        raise errors.validation(
            "allowedAnalyses lists either analysis template ARNs or ANY_QUERY/ANY_JOB, not both.",
            reason="INVALID_CONFIGURATION", field=f"{path}.allowedAnalyses",
            field_message="Mixes analysis template ARNs with ANY_QUERY/ANY_JOB")
    if wildcards and not providers:
        raise errors.validation(
            f"allowedAnalysisProviders is required when allowedAnalyses is {' and '.join(wildcards)}.",
            reason="INVALID_CONFIGURATION", field=f"{path}.allowedAnalysisProviders",
            field_message=f"Required with {' and '.join(wildcards)}")
    if providers and not wildcards:
        raise errors.validation(
            "allowedAnalysisProviders can be given only when allowedAnalyses is ANY_QUERY or ANY_JOB; a rule "
            "allows either specific analysis templates or analysis providers.", reason="INVALID_CONFIGURATION",
            field=f"{path}.allowedAnalysisProviders",
            field_message="Allowed only with ANY_QUERY or ANY_JOB in allowedAnalyses")
    check_custom_controls(body, path)
    if "differentialPrivacy" in body and reference_kind not in S3_REFERENCES:
        raise errors.validation(
            f"Differential privacy is available only for tables whose data is in Amazon S3, not for "
            f"{reference_kind} table references.", reason="INVALID_CONFIGURATION",
            field=f"{path}.differentialPrivacy", field_message=f"Not supported for {reference_kind} tables")


def check_custom_controls(body: dict, path: str) -> None:
    """aggregationThresholds and comparisonControls, as the model documents them: not with differential privacy,
    not on a rule that allows only jobs; no identity column compared with literals; per-column overrides once each,
    0 (exempt) or at least 2."""
    thresholds, controls = body.get("aggregationThresholds"), body.get("comparisonControls")
    for field, value in (("aggregationThresholds", thresholds), ("comparisonControls", controls)):
        if value is None:
            continue
        if "differentialPrivacy" in body:
            raise errors.validation(f"{field} cannot be used with differential privacy.",
                                    reason="INVALID_CONFIGURATION", field=f"{path}.{field}",
                                    field_message="Not allowed with differentialPrivacy")
        if body["allowedAnalyses"] and set(body["allowedAnalyses"]) == {"ANY_JOB"}:
            raise errors.validation(f"{field} cannot be used when allowedAnalyses allows only jobs.",
                                    reason="INVALID_CONFIGURATION", field=f"{path}.{field}",
                                    field_message="Not allowed when allowedAnalyses is ANY_JOB")
    literal = set((controls or {}).get("allowedLiteralComparisonColumns") or [])
    for i, threshold in enumerate(thresholds or [], 1):
        where = f"{path}.aggregationThresholds.{i}.member"
        compared = [c for c in threshold["identityColumns"] if c in literal]
        if compared:
            raise errors.validation(
                f"An identity column of an aggregation threshold cannot be an allowed literal comparison column: "
                f"{', '.join(compared)}.", reason="INVALID_CONFIGURATION",
                field=f"{path}.comparisonControls.allowedLiteralComparisonColumns",
                field_message=f"Identity columns: {', '.join(compared)}")
        overrides = threshold.get("outputColumnThresholds") or []
        check_no_duplicates([o["outputColumnName"] for o in overrides], f"{where}.outputColumnThresholds")
        for j, override in enumerate(overrides, 1):
            if override["minimumIdentityCount"] == 1:
                raise errors.validation(
                    "An output column threshold is 0 (the column is exempt) or at least 2.",
                    field=f"{where}.outputColumnThresholds.{j}.member.minimumIdentityCount",
                    field_message="Must be 0 or at least 2")
    if controls is not None:
        for field in ("allowedLiteralComparisonColumns", "allowedColumnComparisonColumns"):
            check_no_duplicates(controls[field], f"{path}.comparisonControls.{field}")


def _check_duplicates(rule_type: str, body: dict, path: str) -> None:
    lists: list[tuple[str, list]] = []
    if rule_type == "AGGREGATION":
        lists += [(f"{path}.aggregateColumns.{i}.member.columnNames", a["columnNames"])
                  for i, a in enumerate(body["aggregateColumns"], 1)]
        lists += [(f"{path}.{f}", body.get(f) or []) for f in ("joinColumns", "dimensionColumns",
                                                                 "scalarFunctions", "allowedJoinOperators")]
    elif rule_type == "LIST":
        lists += [(f"{path}.{f}", body.get(f) or []) for f in ("joinColumns", "listColumns", "allowedJoinOperators")]
    else:
        lists += [(f"{path}.{f}", body.get(f) or []) for f in (
            "allowedAnalyses", "allowedAnalysisProviders", "disallowedOutputColumns", "allowedResultReceivers",
            "allowedAdditionalAnalyses")]
    for field, values in lists:
        check_no_duplicates(values, field)


def check_no_duplicates(values: list, field: str) -> None:
    seen, repeated = set(), []
    for value in values:
        if value in seen and value not in repeated:
            repeated.append(value)
        seen.add(value)
    if repeated:
        raise errors.validation(f"{field} lists the same value more than once: {', '.join(map(str, repeated))}.",
                                field=field, field_message=f"Duplicate values: {', '.join(map(str, repeated))}")
