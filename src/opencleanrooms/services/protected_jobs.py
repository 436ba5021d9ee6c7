"""Protected jobs: StartProtectedJob, GetProtectedJob, ListProtectedJobs, UpdateProtectedJob.

A job runs an approved PySpark analysis template over the collaboration's tables. Start checks the request as AWS
does (an ACTIVE member with CAN_RUN_JOB, a PySpark template of the collaboration with typed parameters, who receives
the results and where, one job at a time per membership), then checks that every table the template reads lets it
run: a CUSTOM analysis rule whose allowedAnalyses list the template (or ANY_JOB with the template's author as an
allowed provider), a configured table that allows direct jobs, a table ready for direct analysis, and every receiver
allowed. A job those checks refuse is recorded FAILED with the reason and nothing runs; an accepted one is stored
SUBMITTED with the artifacts' approved SHA-256 hashes, and a runner (runner/jobs.py) checks the artifacts against
them before it runs anything. What each choice rests on is in docs/behaviour.md under "Protected jobs".
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa

from opencleanrooms.services import errors, locks, schemas
from opencleanrooms.services import protected_runs as runs
from opencleanrooms.services.analysis_templates import PYSPARK
from opencleanrooms.services.configured_tables import reference_kind
from opencleanrooms.services.context import RequestContext
from opencleanrooms.services.registry import operation
from opencleanrooms.storage import analysis_templates as template_store
from opencleanrooms.storage import protected_jobs as store
from opencleanrooms.storage import table_associations as association_store

RECEIVE = "CAN_RECEIVE_RESULTS"
RUN_JOB = "CAN_RUN_JOB"


@operation("StartProtectedJob")
def start_protected_job(ctx: RequestContext, params: dict) -> dict:
    membership_id = params["membershipIdentifier"]
    with ctx.db.read() as conn:
        caller = runs.active_caller(conn, ctx, membership_id, RUN_JOB, "start protected jobs")
        membership, collaboration = caller.membership, caller.collaboration
        members, memberships = caller.members, caller.memberships
        template = _template(conn, params["jobParameters"]["analysisTemplateArn"], collaboration)
        parameters = {name: value for name, (_, value) in runs.template_parameters(
            template, params["jobParameters"].get("parameters") or {}, "jobParameters.parameters").items()}
        output, reported = _output(ctx, params, members, memberships, template)
        _check_payer(members)
        names = template["doc"]["schema"]["referencedTables"]
        rows = association_store.schemas_by_names(conn, collaboration["id"], names)
        facts = schemas.CollaborationFacts.read(conn, collaboration)
        sources = schemas.catalog_sources(conn, rows)

    job_id = str(uuid.uuid4())
    receivers = [output["account_id"]]
    doc = {"jobParameters": params["jobParameters"], "receivers": receivers}
    if "computeConfiguration" in params:
        doc["computeConfiguration"] = params["computeConfiguration"]
    doc["resultConfiguration"] = {"outputConfiguration": reported}
    refusal = _refusal(template, names, rows, sources, facts, receivers)
    status = "SUBMITTED" if refusal is None else "FAILED"
    if refusal is not None:
        doc["error"] = refusal
        doc["statistics"] = {"totalDurationInMillis": 0}
        spec = {}
    else:
        spec = _spec(template, names, rows, sources, parameters, output)
    row = {"id": job_id, "region": ctx.region, "account_id": ctx.account_id, "collaboration_id": collaboration["id"],
           "membership_id": membership_id, "status": status, "create_time": ctx.now, "update_time": ctx.now,
           "doc": doc, "spec": spec}
    viewers = [memberships[a]["id"] for a in [ctx.account_id, *receivers] if a in memberships]
    with ctx.db.write(locks=[locks.membership(membership_id)]) as conn:  # one running job per membership
        if status == "SUBMITTED":
            running = store.count_active(conn, membership_id=membership_id)
            ctx.quotas.check("concurrent_jobs_per_membership", running + 1)
        store.insert(conn, row, viewers)
    if status == "SUBMITTED" and ctx.wake_runner is not None:
        ctx.wake_runner()
    return {"protectedJob": job_view(row, membership)}


@operation("GetProtectedJob")
def get_protected_job(ctx: RequestContext, params: dict) -> dict:
    row, membership = runs.read(ctx, store, params["membershipIdentifier"], params["protectedJobIdentifier"], "job")
    return {"protectedJob": job_view(row, membership)}


@operation("ListProtectedJobs")
def list_protected_jobs(ctx: RequestContext, params: dict):
    return runs.list_runs(ctx, params, store, "protectedJobs", runs.summary)


@operation("UpdateProtectedJob")
def update_protected_job(ctx: RequestContext, params: dict) -> dict:
    """Cancel: a job not started yet is CANCELLED at once; a running one becomes CANCELLING until its runner kills
    its sandbox; a finished one cannot be cancelled (ConflictException)."""
    row, membership = runs.cancel(ctx, store, params["membershipIdentifier"], params["protectedJobIdentifier"], "job")
    return {"protectedJob": job_view(row, membership)}


# ------------------------------------------------------------------------------------------------ views


def job_view(row, membership) -> dict:
    """The ProtectedJob output shape."""
    return runs.view(row, membership)


# ------------------------------------------------------------------------------------------------ checks


def _template(conn: sa.Connection, arn: str, collaboration):
    template = template_store.by_arns_in_collaboration(conn, collaboration["id"], [arn]).get(arn)
    if template is None:
        raise errors.validation(f"Analysis template {arn} is not an analysis template of collaboration "
                                f"{collaboration['id']}.", field="jobParameters.analysisTemplateArn")
    if template["doc"]["format"] not in PYSPARK:
        raise errors.validation(f"Analysis template {arn} is a {template['doc']['format']} template; run it with "
                                "StartProtectedQuery.", field="jobParameters.analysisTemplateArn")
    if "artifacts" not in (template["doc"].get("sourceMetadata") or {}):
        raise errors.validation(f"Analysis template {arn} has no recorded artifact hashes to check its code "
                                "against.", field="jobParameters.analysisTemplateArn")
    return template


def _output(ctx: RequestContext, params: dict, members: dict, memberships: dict, template):
    """Where the results go (for the runner) and the resultConfiguration's outputConfiguration as reported."""
    configuration = (params.get("resultConfiguration") or {}).get("outputConfiguration")
    field = "resultConfiguration.outputConfiguration.member.accountId"
    if configuration is None:
        account, field, kind = ctx.account_id, "resultConfiguration", "s3"
    else:
        account, kind = configuration["member"]["accountId"], "member"
    member = members.get(account)
    if member is None or member["status"] != "ACTIVE" or RECEIVE not in member["doc"]["abilities"]:
        raise errors.validation(f"Account {account} is not an active member of the collaboration with the {RECEIVE} "
                                "ability.", field=field)
    if account != template["account_id"]:
        raise errors.validation(f"The results of a PySpark job go to the member who created its analysis template "
                                f"({template['account_id']}), not {account}.", field=field)
    settings = ((memberships.get(account) or {}).get("doc") or {}).get("defaultJobResultConfiguration") or {}
    s3 = (settings.get("outputConfiguration") or {}).get("s3")
    if s3 is None:
        raise errors.validation(f"Member {account} has not configured where it receives job results (its "
                                "membership's defaultJobResultConfiguration).", field=field)
    output = {"kind": kind, "account_id": account, "bucket": s3["bucket"], "key_prefix": s3.get("keyPrefix", "")}
    reported = {"member": {"accountId": account}} if kind == "member" else {"s3": dict(s3)}
    return output, reported


def _check_payer(members: dict) -> None:
    """The member responsible for job compute, when the collaboration names one, must be ACTIVE."""
    payers = [m for m in members.values()
              if ((m["doc"].get("paymentConfiguration") or {}).get("jobCompute") or {}).get("isResponsible")]
    for payer in payers:
        if payer["status"] != "ACTIVE":
            raise errors.validation("The member responsible for job compute costs is not an active member of the "
                                    "collaboration; jobs cannot run until it is.", field="jobParameters")


def _refusal(template, names: list[str], rows: dict, sources: dict, facts, receivers: list[str]) -> dict | None:
    """Why the tables' owners do not let this job run (ProtectedJobError), or None."""
    for name in names:
        row = rows.get(name)
        if row is None:
            return _error("RESOURCE_NOT_FOUND", f"Table `{name}`, which the analysis template reads, is not a table "
                                                "of the collaboration.")
        table_doc, rule_type = row["table_doc"], row["table_rule_type"]
        if rule_type != "CUSTOM":
            return _error("RESOURCE_ACCESS_DENIED", f"Table `{name}` does not have a CUSTOM analysis rule; PySpark "
                                                    "jobs run only on tables whose custom rule allows them.")
        rule = row["table_rule_policy"]["v1"]["custom"]
        analyses, providers = rule.get("allowedAnalyses") or [], rule.get("allowedAnalysisProviders") or []
        if template["arn"] not in analyses and not ("ANY_JOB" in analyses and template["account_id"] in providers):
            return _error("RESOURCE_ACCESS_DENIED", f"The CUSTOM rule of table `{name}` does not allow this "
                                                    "analysis template: its allowedAnalyses do not list it, and its "
                                                    "author is not an allowed provider of ANY_JOB analyses.")
        methods = ({"DIRECT_QUERY", "DIRECT_JOB"} if table_doc["analysisMethod"] == "MULTIPLE"
                   and "selectedAnalysisMethods" not in table_doc else set(table_doc.get("selectedAnalysisMethods")
                                                                            or [table_doc["analysisMethod"]]))
        if "DIRECT_JOB" not in methods:
            return _error("RESOURCE_ACCESS_DENIED", f"Configured table `{name}` does not allow direct jobs (its "
                                                    "analysisMethod does not include DIRECT_JOB).")
        kind = reference_kind(table_doc["tableReference"])
        if kind != "glue" or sources.get(name) is None:
            return _error("INVALID_RESOURCE", f"The data of table `{name}` is not in its owner's catalog on this "
                                              "server; only AWS Glue (catalog) tables can be read here.")
        reasons = runs.not_ready(row, facts)
        if reasons is not None:
            return _error("INVALID_RESOURCE", f"Table `{name}` is not ready for direct analysis ({reasons})")
        refused = runs.refused_receivers(row, receivers)
        if refused:
            return _error("RESOURCE_ACCESS_DENIED", f"The collaboration analysis rule of table `{name}` does not "
                                                    f"allow {', '.join(refused)} to receive results of jobs on it.")
    return None


def _spec(template, names: list[str], rows: dict, sources: dict, parameters: dict, output: dict) -> dict:
    """What a runner needs: the artifacts with their approved hashes, the tables, the values, the destination."""
    source = template["doc"]["source"]["artifacts"]
    hashes = template["doc"]["sourceMetadata"]["artifacts"]
    locations = [source["entryPoint"]["location"], *[a["location"] for a in source.get("additionalArtifacts") or []]]
    digests = [hashes["entryPointHash"]["sha256"], *[h["sha256"] for h in hashes.get("additionalArtifactHashes") or []]]
    tables = []
    for name in names:
        src = sources[name]
        tables.append({"name": name, "account_id": src.account_id, "region": src.region, "database": src.database,
                       "table": src.table, "columns": list(rows[name]["table_doc"]["allowedColumns"])})
    return {"template_arn": template["arn"],
            "artifacts": [{"bucket": loc["bucket"], "key": loc["key"], "sha256": digest}
                          for loc, digest in zip(locations, digests)],
            "tables": tables, "parameters": parameters, "outputs": [output],
            "detailed_errors": (template["doc"].get("errorMessageConfiguration") or {}).get("type") == "DETAILED"}


def _error(code: str, message: str) -> dict:
    return {"code": code, "message": message}

