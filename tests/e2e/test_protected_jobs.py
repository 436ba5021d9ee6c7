"""Protected (PySpark) jobs over HTTP: a member runs an approved PySpark analysis template over two members' tables
and receives its result; a tampered artifact is refused; the rules of who may run what, and cancellation.

The server has moto's S3 as its S3 endpoint (artifacts are read from there, results written there). Tests marked
`spark_job` start a real JVM inside the job sandbox (10-40 s each): there are two, kept few on purpose; the others
stop before any code runs.
"""

from __future__ import annotations

import hashlib
import shutil
import time
import uuid
from dataclasses import dataclass

import duckdb
import pytest

from opencleanrooms.catalog import S3Settings
from opencleanrooms.results import read_result
from tests.e2e.test_protected_queries import catalog_tables
from tests.support.builders import Party, all_pages, poll, raises
from tests.support.moto import S3_KEY, S3_SECRET, MotoS3
from tests.support.server import ServerProcess

ROLE = "arn:aws:iam::111122223333:role/cleanrooms-jobs"
FINAL = {"SUCCESS", "FAILED", "CANCELLED"}
COLUMNS = {"customers": ["user_id", "segment", "age_band"], "impressions": ["user_id", "campaign_id", "clicks"]}

spark_job = pytest.mark.spark_job


def jobs_runnable() -> str | None:
    """Why this machine cannot run PySpark jobs, or None."""
    import importlib.util

    if shutil.which("bwrap") is None:
        return "bubblewrap (bwrap) is not installed"
    if importlib.util.find_spec("pyspark") is None:
        return "pyspark is not installed (the `spark` extra)"
    if shutil.which("java") is None:
        return "no Java runtime"
    return None


needs_spark = pytest.mark.skipif(jobs_runnable() is not None, reason=f"cannot run PySpark jobs: {jobs_runnable()}")

# The user script of the approved template: the overlap by segment, plus what the sandbox let it do.
SCRIPT = b'''
import os, socket

import helpers  # the template's additional artifact

def attempt(action):
    try:
        action()
        return "allowed"
    except Exception as exc:
        return type(exc).__name__

def entrypoint(context):
    spark = context["sparkSession"]
    customers = context["referencedTables"]["customers"]
    impressions = context["referencedTables"]["impressions"]
    minimum = helpers.as_int(context["analysisParameters"]["min_clicks"])
    joined = customers.join(impressions.where(impressions.clicks >= minimum), "user_id")
    overlap = joined.groupBy("segment").agg({"user_id": "count", "clicks": "sum"}) \\
        .withColumnRenamed("count(user_id)", "rows").withColumnRenamed("sum(clicks)", "clicks")
    probes = [
        ("email_column", "allowed" if "email" in customers.columns else "absent"),
        ("read_table_file", attempt(lambda: open(PATHS["table"], "rb").read(1))),
        ("read_server_dir", attempt(lambda: os.listdir(PATHS["data_dir"]))),
        ("connect_s3", attempt(lambda: socket.create_connection(("127.0.0.1", PATHS["s3_port"]), timeout=3))),
        ("write_tables", attempt(lambda: open("/job/tables/extra", "w").write("x"))),
    ]
    return {"results": {"overlap": overlap, "probes": spark.createDataFrame(probes, ["probe", "outcome"])}}
'''


HELPERS = b"def as_int(text):\n    return int(text)\n"


@dataclass
class World:
    server: ServerProcess
    s3: object
    s3_settings: S3Settings
    alice: object  # creator: CAN_RUN_JOB + CAN_RECEIVE_RESULTS, owns customers, writes the template
    bob: object  # contributor, owns impressions
    collaboration: dict
    memberships: dict
    tables: dict
    paths: dict
    bucket: str

    def mid(self, who) -> str:
        return self.memberships[who.id]["id"]


@pytest.fixture(scope="module")
def jobs_server(tmp_path_factory):
    base = tmp_path_factory.mktemp("jobs")
    with MotoS3(base) as moto:
        config = moto.server_config(base / "config.toml")
        server = ServerProcess(base / "server", "--config", str(config), "--job-timeout", "300").start()
        yield (server, moto.client(),
               S3Settings(endpoint_url=moto.endpoint, access_key_id=S3_KEY, secret_access_key=S3_SECRET), config)
        server.stop()


def build_world(server, s3, s3_settings, tmp_path, *, approve=True, script=SCRIPT, detailed=False) -> tuple:
    """Alice and Bob in a SPARK collaboration, each with a table whose CUSTOM rule allows (after approval) Alice's
    PySpark template; returns the world and the template."""
    alice, bob = Party(server), Party(server)
    paths = catalog_tables(server, alice, bob, tmp_path)
    collaboration = alice.client.create_collaboration(
        name="jobs", description="customers x impressions, in PySpark", creatorDisplayName="Alice",
        creatorMemberAbilities=["CAN_RUN_JOB", "CAN_RECEIVE_RESULTS"], queryLogStatus="DISABLED",
        analyticsEngine="SPARK", members=[{"accountId": bob.id, "displayName": "Bob", "memberAbilities": []}],
    )["collaboration"]
    bucket = f"results-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    payment = {m["accountId"]: m["paymentConfiguration"] for m in alice.client.list_members(
        collaborationIdentifier=collaboration["id"])["memberSummaries"]}[alice.id]  # alice pays for job compute
    memberships = {
        alice.id: alice.client.create_membership(
            collaborationIdentifier=collaboration["id"], queryLogStatus="DISABLED", paymentConfiguration=payment,
            defaultJobResultConfiguration={"outputConfiguration": {"s3": {"bucket": bucket, "keyPrefix": "jobs"}},
                                           "roleArn": ROLE})["membership"],
        bob.id: bob.client.create_membership(collaborationIdentifier=collaboration["id"],
                                             queryLogStatus="DISABLED")["membership"],
    }
    world = World(server, s3, s3_settings, alice, bob, collaboration, memberships, {}, paths, bucket)
    for who, database, name in ((alice, "crm", "customers"), (bob, "ads", "impressions")):
        table = who.client.create_configured_table(
            name=name, tableReference={"glue": {"databaseName": database, "tableName": name}},
            allowedColumns=COLUMNS[name], analysisMethod="DIRECT_JOB")["configuredTable"]
        who.client.create_configured_table_analysis_rule(
            configuredTableIdentifier=table["id"], analysisRuleType="CUSTOM",
            analysisRulePolicy={"v1": {"custom": {"allowedAnalyses": []}}})
        association = who.client.create_configured_table_association(
            membershipIdentifier=world.mid(who), configuredTableIdentifier=table["id"], name=name,
            roleArn=ROLE)["configuredTableAssociation"]
        who.client.create_configured_table_association_analysis_rule(
            membershipIdentifier=world.mid(who), configuredTableAssociationIdentifier=association["id"],
            analysisRuleType="CUSTOM", analysisRulePolicy={"v1": {"custom": {"allowedResultReceivers": [alice.id]}}})
        world.tables[name] = table
    port = int(s3_settings.endpoint_url.rsplit(":", 1)[1])
    paths_line = (f"PATHS = {{'table': {paths['impressions']!r}, 'data_dir': {str(server.data_dir)!r}, "
                  f"'s3_port': {port}}}\n").encode()
    artifacts_bucket = f"artifacts-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=artifacts_bucket)
    s3.put_object(Bucket=artifacts_bucket, Key="overlap/user_script.py", Body=paths_line + script)
    s3.put_object(Bucket=artifacts_bucket, Key="overlap/helpers.py", Body=HELPERS)
    extra = {"errorMessageConfiguration": {"type": "DETAILED"}} if detailed else {}
    template = alice.client.create_analysis_template(
        membershipIdentifier=world.mid(alice), name="overlap", format="PYSPARK_1_0",
        source={"artifacts": {"entryPoint": {"location": {"bucket": artifacts_bucket, "key": "overlap/user_script.py"}},
                              "additionalArtifacts": [{"location": {"bucket": artifacts_bucket,
                                                                   "key": "overlap/helpers.py"}}],
                              "roleArn": ROLE}},
        schema={"referencedTables": ["customers", "impressions"]},
        analysisParameters=[{"name": "min_clicks", "type": "INTEGER", "defaultValue": "1"}], **extra,
    )["analysisTemplate"]
    if approve:
        approve_template(world, template)
    return world, template


def approve_template(world: World, template: dict) -> None:
    """Each table owner allows the template in its table's custom rule (what the owners review and approve)."""
    for who, name in ((world.alice, "customers"), (world.bob, "impressions")):
        who.client.update_configured_table_analysis_rule(
            configuredTableIdentifier=world.tables[name]["id"], analysisRuleType="CUSTOM",
            analysisRulePolicy={"v1": {"custom": {"allowedAnalyses": [template["arn"]]}}})


def start(world: World, template: dict, **extra) -> dict:
    return world.alice.client.start_protected_job(
        type="PYSPARK", membershipIdentifier=world.mid(world.alice),
        jobParameters={"analysisTemplateArn": template["arn"], **extra.pop("job", {})}, **extra)["protectedJob"]


def wait_for(client, membership_id: str, job_id: str, statuses=FINAL, timeout: float = 240) -> dict:
    return poll(lambda: client.get_protected_job(membershipIdentifier=membership_id,
                                                 protectedJobIdentifier=job_id)["protectedJob"],
                statuses, timeout, 0.2)


def job_objects(world: World, job_id: str) -> list[str]:
    listed = world.s3.list_objects_v2(Bucket=world.bucket, Prefix=f"jobs/{job_id}/").get("Contents", [])
    return sorted(o["Key"] for o in listed)


# ------------------------------------------------------------------------------------------------ running


@spark_job
@needs_spark
def test_an_approved_pyspark_template_runs_and_delivers_its_result(jobs_server, tmp_path):
    server, s3, settings, _ = jobs_server
    world, template = build_world(server, s3, settings, tmp_path)
    began = time.monotonic()
    job = start(world, template, job={"parameters": {"min_clicks": "3"}})
    assert job["status"] == "SUBMITTED" and job["membershipId"] == world.mid(world.alice)
    assert job["resultConfiguration"] == {"outputConfiguration": {"s3": {"bucket": world.bucket, "keyPrefix": "jobs"}}}
    done = wait_for(world.alice.client, world.mid(world.alice), job["id"])
    latency = time.monotonic() - began
    print(f"\nprotected job start-to-result latency: {latency:.1f} s")
    assert done["status"] == "SUCCESS", done
    location = done["result"]["output"]["s3"]["location"]
    assert location == f"s3://{world.bucket}/jobs/{job['id']}/"
    assert done["statistics"]["totalDurationInMillis"] > 0

    overlap = read_result(location + "overlap/", settings)
    got = sorted((r["segment"], r["rows"], r["clicks"]) for r in overlap.to_pylist())
    with duckdb.connect() as con:  # the same question, asked independently of the job
        want = sorted(con.execute(
            f"SELECT c.segment, COUNT(*), SUM(i.clicks) FROM read_parquet('{world.paths['customers']}') c "
            f"JOIN read_parquet('{world.paths['impressions']}') i ON c.user_id = i.user_id WHERE i.clicks >= 3 "
            "GROUP BY c.segment").fetchall())
    assert got == want and len(got) == 4
    probes = {r["probe"]: r["outcome"] for r in read_result(location + "probes/", settings).to_pylist()}
    assert probes["email_column"] == "absent"  # only the allowed columns reach the job
    for probe in ("read_table_file", "read_server_dir", "connect_s3", "write_tables"):
        assert probes[probe] != "allowed", probes
    assert all(key.startswith(f"jobs/{job['id']}/overlap/") or key.startswith(f"jobs/{job['id']}/probes/")
               for key in job_objects(world, job["id"]))

    # bob contributed data but neither ran nor receives the job: he does not see it
    assert world.bob.client.list_protected_jobs(membershipIdentifier=world.mid(world.bob))["protectedJobs"] == []
    raises("ResourceNotFoundException", world.bob.client.get_protected_job, membershipIdentifier=world.mid(world.bob),
           protectedJobIdentifier=job["id"])
    listed = all_pages(world.alice.client, "list_protected_jobs", "protectedJobs",
                       membershipIdentifier=world.mid(world.alice))
    assert [(j["id"], j["status"]) for j in listed] == [(job["id"], "SUCCESS")]
    assert listed[0]["receiverConfigurations"] == [{"analysisType": "DIRECT_ANALYSIS", "configurationDetails": {
        "directAnalysisConfigurationDetails": {"receiverAccountIds": [world.alice.id]}}}]
    raises("ConflictException", world.alice.client.update_protected_job, membershipIdentifier=world.mid(world.alice),
           protectedJobIdentifier=job["id"], targetStatus="CANCELLED")


@spark_job
@needs_spark
def test_code_that_fails_ends_the_job_failed_with_its_error_only_when_detailed(jobs_server, tmp_path):
    server, s3, settings, _ = jobs_server
    failing = b"def entrypoint(context):\n    raise ValueError('customer u001 is special')\n"
    world, template = build_world(server, s3, settings, tmp_path, script=failing, detailed=True)
    done = wait_for(world.alice.client, world.mid(world.alice), start(world, template)["id"])
    assert done["status"] == "FAILED" and done["error"]["code"] == "USER_CODE_ERROR", done
    assert "customer u001 is special" in done["error"]["message"]
    assert "result" not in done and job_objects(world, done["id"]) == []


# ---------------------------------------------------------------------------------------------- refused before running


def test_a_tampered_artifact_is_refused_before_any_code_runs(jobs_server, tmp_path):
    server, s3, settings, _ = jobs_server
    world, template = build_world(server, s3, settings, tmp_path)
    location = template["source"]["artifacts"]["entryPoint"]["location"]
    tampered = (b"def entrypoint(context):\n"
                b"    return {'results': {'all': context['referencedTables']['impressions']}}\n")
    s3.put_object(Bucket=location["bucket"], Key=location["key"], Body=tampered)
    done = wait_for(world.alice.client, world.mid(world.alice), start(world, template)["id"], timeout=60)
    assert done["status"] == "FAILED", done
    assert done["error"]["code"] == "INVALID_RESOURCE" and "modified" in done["error"]["message"]
    assert hashlib.sha256(tampered).hexdigest() in done["error"]["message"]
    assert "result" not in done and job_objects(world, done["id"]) == []
    # an artifact removed is refused the same way
    s3.delete_object(Bucket=location["bucket"], Key=location["key"])
    gone = wait_for(world.alice.client, world.mid(world.alice), start(world, template)["id"], timeout=60)
    assert gone["status"] == "FAILED" and "removed" in gone["error"]["message"]


def test_a_template_the_tables_do_not_allow_is_refused(jobs_server, tmp_path):
    server, s3, settings, _ = jobs_server
    world, template = build_world(server, s3, settings, tmp_path, approve=False)
    refused = start(world, template)
    assert refused["status"] == "FAILED" and refused["error"]["code"] == "RESOURCE_ACCESS_DENIED"
    assert "customers" in refused["error"]["message"]
    # approved by alice only: bob's table still refuses
    world.alice.client.update_configured_table_analysis_rule(
        configuredTableIdentifier=world.tables["customers"]["id"], analysisRuleType="CUSTOM",
        analysisRulePolicy={"v1": {"custom": {"allowedAnalyses": [template["arn"]]}}})
    half = start(world, template)
    assert half["status"] == "FAILED" and "impressions" in half["error"]["message"]
    # ANY_JOB with the template's author as provider approves every template of hers
    world.bob.client.update_configured_table_analysis_rule(
        configuredTableIdentifier=world.tables["impressions"]["id"], analysisRuleType="CUSTOM",
        analysisRulePolicy={"v1": {"custom": {"allowedAnalyses": ["ANY_JOB"],
                                              "allowedAnalysisProviders": [world.alice.id]}}})
    accepted = start(world, template)
    assert accepted["status"] == "SUBMITTED"
    world.alice.client.update_protected_job(membershipIdentifier=world.mid(world.alice),
                                            protectedJobIdentifier=accepted["id"], targetStatus="CANCELLED")
    assert wait_for(world.alice.client, world.mid(world.alice), accepted["id"])["status"] == "CANCELLED"


@pytest.fixture(scope="module")
def idle_server(jobs_server, tmp_path_factory):
    """A server of its own on the same S3 that runs no jobs: what is started stays SUBMITTED."""
    _, _, _, config = jobs_server
    idle = ServerProcess(tmp_path_factory.mktemp("idle"), "--config", str(config), "--job-workers", "0").start()
    yield idle
    idle.stop()


def test_start_checks_who_runs_what_and_where_results_go(jobs_server, idle_server, tmp_path):
    _, s3, settings, _ = jobs_server
    world, template = build_world(idle_server, s3, settings, tmp_path)
    alice, mid = world.alice, world.mid(world.alice)
    raises("AccessDeniedException", world.bob.client.start_protected_job, type="PYSPARK",
           membershipIdentifier=world.mid(world.bob), jobParameters={"analysisTemplateArn": template["arn"]})
    raises("ResourceNotFoundException", alice.client.start_protected_job, type="PYSPARK",
           membershipIdentifier=str(uuid.uuid4()), jobParameters={"analysisTemplateArn": template["arn"]})
    other = template["arn"].rsplit("/", 1)[0] + "/" + str(uuid.uuid4())
    assert "not an analysis template" in raises("ValidationException", start, world, {"arn": other})[
        "Error"]["Message"]
    for parameters in ({"nope": "1"}, {"min_clicks": "three"}, {"min_clicks": "1 OR 1=1"}):
        raises("ValidationException", start, world, template, job={"parameters": parameters})
    # results go to the template's author, who must be able to receive them
    to_bob = {"outputConfiguration": {"member": {"accountId": world.bob.id}}}
    assert world.bob.id in raises("ValidationException", start, world, template, resultConfiguration=to_bob)[
        "Error"]["Message"]

    first = start(world, template, resultConfiguration={"outputConfiguration": {"member": {"accountId": alice.id}}})
    assert first["status"] == "SUBMITTED"
    assert first["resultConfiguration"] == {"outputConfiguration": {"member": {"accountId": alice.id}}}
    response = raises("ServiceQuotaExceededException", start, world, template)  # one job at a time
    assert response["quotaName"] == "Concurrent protected jobs per membership" and response["quotaValue"] == 1
    cancelled = alice.client.update_protected_job(membershipIdentifier=mid, protectedJobIdentifier=first["id"],
                                                  targetStatus="CANCELLED")["protectedJob"]
    assert cancelled["status"] == "CANCELLED"  # never started: cancelled at once
    raises("ConflictException", alice.client.update_protected_job, membershipIdentifier=mid,
           protectedJobIdentifier=first["id"], targetStatus="CANCELLED")
    second = start(world, template)  # room again
    assert [j["id"] for j in alice.client.list_protected_jobs(membershipIdentifier=mid,
                                                              status="CANCELLED")["protectedJobs"]] == [first["id"]]
    assert [j["id"] for j in all_pages(alice.client, "list_protected_jobs", "protectedJobs",
                                       membershipIdentifier=mid)] == [second["id"], first["id"]]
    raises("ResourceNotFoundException", world.bob.client.update_protected_job,
           membershipIdentifier=world.mid(world.bob), protectedJobIdentifier=second["id"],
           targetStatus="CANCELLED")
    # a SQL template is not a job
    sql = alice.client.create_analysis_template(
        membershipIdentifier=mid, name="sql", format="SQL", source={"text": "SELECT COUNT(*) FROM customers"}
    )["analysisTemplate"]
    alice.client.update_protected_job(membershipIdentifier=mid, protectedJobIdentifier=second["id"],
                                      targetStatus="CANCELLED")
    assert "StartProtectedQuery" in raises("ValidationException", start, world, sql)["Error"]["Message"]


def _job_calls(client, mid, job_id, template_arn):
    ids = {"membershipIdentifier": mid, "protectedJobIdentifier": job_id}
    return [
        ("StartProtectedJob", client.start_protected_job,
         {"membershipIdentifier": mid, "type": "PYSPARK", "jobParameters": {"analysisTemplateArn": template_arn}}),
        ("GetProtectedJob", client.get_protected_job, ids),
        ("UpdateProtectedJob", client.update_protected_job, {**ids, "targetStatus": "CANCELLED"}),
        ("ListProtectedJobs", client.list_protected_jobs, {"membershipIdentifier": mid}),
    ]


def test_other_accounts_reach_no_job(jobs_server, idle_server, tmp_path):
    """A co-member and a stranger, on Alice's membership as on an unknown one, and with Alice's job id under
    their own membership: every job call answers as if nothing were there, and nothing of Alice's changes."""
    _, s3, settings, _ = jobs_server
    world, template = build_world(idle_server, s3, settings, tmp_path)
    alice, mid = world.alice, world.mid(world.alice)
    job = start(world, template)
    stranger = Party(idle_server)
    unknown_mid = str(uuid.uuid4())

    def alice_view():
        return (alice.client.get_protected_job(membershipIdentifier=mid, protectedJobIdentifier=job["id"])[
                    "protectedJob"],
                all_pages(alice.client, "list_protected_jobs", "protectedJobs", membershipIdentifier=mid))

    before = alice_view()
    for role, (p, own_mid) in {"member": (world.bob, world.mid(world.bob)), "stranger": (stranger, None)}.items():
        for (name, call, params), (_, unknown_call, unknown_params) in zip(
                _job_calls(p.client, mid, job["id"], template["arn"]),
                _job_calls(p.client, unknown_mid, job["id"], template["arn"])):
            foreign = raises("ResourceNotFoundException", call, **params)
            unknown = raises("ResourceNotFoundException", unknown_call, **unknown_params)
            assert (foreign["resourceType"], foreign["resourceId"]) == ("MEMBERSHIP", mid), (role, name)
            assert foreign["Error"]["Message"].replace(mid, "X") == \
                unknown["Error"]["Message"].replace(unknown_mid, "X"), (role, name)
        if own_mid:  # Alice's job under Bob's own membership does not exist; he cannot start jobs at all
            for name, call, params in _job_calls(p.client, own_mid, job["id"], template["arn"])[1:3]:
                response = raises("ResourceNotFoundException", call, **params)
                assert response["resourceId"] == job["id"], (role, name)
            assert p.client.list_protected_jobs(membershipIdentifier=own_mid)["protectedJobs"] == []
            _, start_call, start_params = _job_calls(p.client, own_mid, job["id"], template["arn"])[0]
            raises("AccessDeniedException", start_call, **start_params)  # bob has no CAN_RUN_JOB
    assert alice_view() == before
    alice.client.update_protected_job(membershipIdentifier=mid, protectedJobIdentifier=job["id"],
                                      targetStatus="CANCELLED")


@needs_spark
def test_cancel_stops_a_running_job(jobs_server, tmp_path):
    server, s3, settings, _ = jobs_server
    sleeper = b"import time\ndef entrypoint(context):\n    time.sleep(600)\n"
    world, template = build_world(server, s3, settings, tmp_path, script=sleeper)
    mid = world.mid(world.alice)
    job = start(world, template)
    assert wait_for(world.alice.client, mid, job["id"], {"STARTED"} | FINAL, timeout=60)["status"] == "STARTED"
    time.sleep(2)  # into the sandbox
    cancelling = world.alice.client.update_protected_job(membershipIdentifier=mid, protectedJobIdentifier=job["id"],
                                                         targetStatus="CANCELLED")["protectedJob"]
    assert cancelling["status"] in ("CANCELLING", "CANCELLED")
    began = time.monotonic()
    assert wait_for(world.alice.client, mid, job["id"], timeout=30)["status"] == "CANCELLED"
    assert time.monotonic() - began < 15
    assert job_objects(world, job["id"]) == []
