"""The command line: `opencleanrooms credentials ...` and `check-model`, and the AWS CLI (v1) against the server.

Everything runs as a real subprocess. The AWS CLI gets a private HOME and config paths so that no user
configuration (profiles, credentials files, regions) can interfere.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from opencleanrooms.protocol.model import load_service_model
from opencleanrooms.services.registry import load_all

AWS = str(Path(sys.executable).with_name("aws"))
KEY, SECRET, ACCOUNT = "AKIAFIXED0000000001", "s3cr3t", "123456789012"
# Commands on a data directory of their own (`--data-dir`: SQLite) whichever backend the suite runs on: skipped in
# the PostgreSQL pass (tests/conftest.py). The tests on the suite's server carry no marker.
own_storage = pytest.mark.backend_independent


def opencleanrooms(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "opencleanrooms", *args], capture_output=True, text=True,
                          timeout=60, env=env)


@pytest.fixture
def data_dir(tmp_path):
    return str(tmp_path / "data")


# -------------------------------------------------------------------------------------------------- our CLI


@own_storage
def test_credentials_create_list_delete(data_dir):
    created = opencleanrooms("credentials", "create", "--data-dir", data_dir, "--account-id", ACCOUNT,
                             "--access-key-id", KEY, "--secret-access-key", SECRET)
    assert created.returncode == 0, created.stderr
    assert created.stdout.strip() == f"account {ACCOUNT}: AWS_ACCESS_KEY_ID={KEY} AWS_SECRET_ACCESS_KEY={SECRET}"

    listed = opencleanrooms("credentials", "list", "--data-dir", data_dir)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines() == [f"{ACCOUNT}  {KEY}"]
    assert SECRET not in listed.stdout + listed.stderr

    deleted = opencleanrooms("credentials", "delete", "--data-dir", data_dir, "--access-key-id", KEY)
    assert (deleted.returncode, deleted.stdout) == (0, ""), deleted.stderr
    listed = opencleanrooms("credentials", "list", "--data-dir", data_dir)
    assert (listed.returncode, listed.stdout) == (0, "")

    again = opencleanrooms("credentials", "delete", "--data-dir", data_dir, "--access-key-id", KEY)
    assert again.returncode == 1
    assert f"no such access key: {KEY}" in again.stderr


@own_storage
def test_credentials_create_generates_key_and_secret(data_dir):
    created = opencleanrooms("credentials", "create", "--data-dir", data_dir, "--account-id", ACCOUNT)
    assert created.returncode == 0, created.stderr
    match = re.fullmatch(rf"account {ACCOUNT}: AWS_ACCESS_KEY_ID=(AKIA[A-Z0-9]{{16}}) "
                         r"AWS_SECRET_ACCESS_KEY=(\S{20,})", created.stdout.strip())
    assert match, created.stdout
    listed = opencleanrooms("credentials", "list", "--data-dir", data_dir)
    assert listed.stdout.splitlines() == [f"{ACCOUNT}  {match[1]}"]
    assert match[2] not in listed.stdout


@own_storage
def test_credentials_create_replaces_an_existing_key(data_dir):
    for account in (ACCOUNT, "210987654321"):
        result = opencleanrooms("credentials", "create", "--data-dir", data_dir, "--account-id", account,
                                "--access-key-id", KEY, "--secret-access-key", SECRET)
        assert result.returncode == 0, result.stderr
    listed = opencleanrooms("credentials", "list", "--data-dir", data_dir)
    assert listed.stdout.splitlines() == [f"210987654321  {KEY}"]


@own_storage
@pytest.mark.parametrize("account", ["12345", "abcdefghijkl", "1234567890123", "12345678901a", ""])
def test_credentials_create_rejects_a_bad_account_id(data_dir, account):
    result = opencleanrooms("credentials", "create", "--data-dir", data_dir, "--account-id", account,
                            "--access-key-id", KEY, "--secret-access-key", SECRET)
    assert result.returncode == 2
    assert "--account-id must be 12 digits" in result.stderr
    assert result.stdout == ""
    listed = opencleanrooms("credentials", "list", "--data-dir", data_dir)
    assert SECRET not in listed.stdout and KEY not in listed.stdout


@own_storage
@pytest.mark.parametrize("key", ["AKIA-BAD", "x" * 129, "AKIA KEY"])
def test_credentials_create_rejects_a_bad_key_id(data_dir, key):
    result = opencleanrooms("credentials", "create", "--data-dir", data_dir, "--account-id", ACCOUNT,
                            "--access-key-id", key, "--secret-access-key", SECRET)
    assert result.returncode == 2
    assert "--access-key-id must be 1-128 letters and digits" in result.stderr


@own_storage
def test_credentials_create_requires_an_account_id(data_dir):
    result = opencleanrooms("credentials", "create", "--data-dir", data_dir)
    assert result.returncode == 2
    assert "--account-id" in result.stderr


@own_storage
@pytest.mark.parametrize("launcher", ["module", "script"])
def test_check_model_prints_the_operation_count(launcher):
    if launcher == "module":
        result = opencleanrooms("check-model")
    else:  # the console script that `pip install` creates
        result = subprocess.run([str(Path(sys.executable).with_name("opencleanrooms")), "check-model"],
                                capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    model, handlers = load_service_model(), load_all()
    first, second = result.stdout.splitlines()[:2]
    assert first.endswith(f": {model.metadata['uid']}, {len(model.operation_names)} operations"), first
    assert second == f"implemented ({len(handlers)}): {', '.join(sorted(handlers))}"
    assert len(result.stdout.splitlines()) == 2, result.stdout  # nothing implemented outside the model


@own_storage
def test_no_command_prints_help_and_fails():
    result = opencleanrooms()
    assert result.returncode == 2
    assert "credentials" in result.stdout and "check-model" in result.stdout


def test_credentials_created_by_the_cli_work_against_a_running_server(server):
    key = "AKIACLI" + os.urandom(6).hex().upper()
    account = "98" + str(int.from_bytes(os.urandom(5), "big") % 10**10).zfill(10)
    result = opencleanrooms("credentials", "create", *server.storage_args, "--account-id",
                            account, "--access-key-id", key, "--secret-access-key", SECRET)
    assert result.returncode == 0, result.stderr
    created = ok(aws(server, _Keys(key, SECRET), "cleanrooms", "create-collaboration", "--members", "[]",
                     "--name", "via cli key", "--creator-member-abilities", "CAN_QUERY",
                     "--creator-display-name", "C", "--query-log-status", "DISABLED"))["collaboration"]
    assert created["creatorAccountId"] == account


# -------------------------------------------------------------------------------------------------- AWS CLI


class _Keys:
    def __init__(self, access_key_id: str, secret_access_key: str) -> None:
        self.access_key_id, self.secret_access_key = access_key_id, secret_access_key


def aws(server, account, *args: str) -> subprocess.CompletedProcess:
    """Run AWS CLI v1 (it has no pager, so no `--no-cli-pager`: v1 rejects that v2-only option)."""
    home = Path(server.data_dir).parent / "aws-cli-home"
    home.mkdir(exist_ok=True)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "AWS_CONFIG_FILE": str(home / "no-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "no-credentials"),
        "AWS_ACCESS_KEY_ID": account.access_key_id,
        "AWS_SECRET_ACCESS_KEY": account.secret_access_key,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_MAX_ATTEMPTS": "1",
        "LANG": "C.UTF-8",
    }
    return subprocess.run([AWS, *args, "--endpoint-url", server.endpoint, "--output", "json"],
                          capture_output=True, text=True, timeout=60, env=env)


def ok(proc: subprocess.CompletedProcess):
    assert proc.returncode == 0, (proc.returncode, proc.stderr)
    return json.loads(proc.stdout) if proc.stdout.strip() else None


def test_aws_cli_collaboration_membership_and_tags(server, tmp_path):
    a, b = server.new_account(), server.new_account()
    request = {
        "members": [{"accountId": b.account_id, "memberAbilities": ["CAN_RECEIVE_RESULTS"], "displayName": "Bee"}],
        "name": "from the cli", "description": "made by aws cli v1", "creatorMemberAbilities": ["CAN_QUERY"],
        "creatorDisplayName": "Ay", "queryLogStatus": "DISABLED", "tags": {"origin": "cli"},
    }
    input_file = tmp_path / "create.json"
    input_file.write_text(json.dumps(request))
    collaboration = ok(aws(server, a, "cleanrooms", "create-collaboration",
                           "--cli-input-json", f"file://{input_file}"))["collaboration"]
    assert (collaboration["name"], collaboration["creatorAccountId"]) == ("from the cli", a.account_id)
    assert collaboration["arn"] == f"arn:aws:cleanrooms:us-east-1:{a.account_id}:collaboration/{collaboration['id']}"

    listed = ok(aws(server, a, "cleanrooms", "list-collaborations"))["collaborationList"]
    assert [c["id"] for c in listed] == [collaboration["id"]]
    assert ok(aws(server, b, "cleanrooms", "list-collaborations", "--member-status", "INVITED"))[
        "collaborationList"][0]["id"] == collaboration["id"]

    membership = ok(aws(server, b, "cleanrooms", "create-membership", "--collaboration-identifier",
                        collaboration["id"], "--query-log-status", "DISABLED"))["membership"]
    active = ok(aws(server, b, "cleanrooms", "list-memberships", "--status", "ACTIVE"))["membershipSummaries"]
    assert [(m["id"], m["status"], m["collaborationName"]) for m in active] == [
        (membership["id"], "ACTIVE", "from the cli")]
    assert ok(aws(server, b, "cleanrooms", "list-memberships", "--status", "REMOVED")) == {
        "membershipSummaries": []}

    arn = collaboration["arn"]
    assert ok(aws(server, a, "cleanrooms", "tag-resource", "--resource-arn", arn, "--tags",
                  "team=data,stage=test")) is None
    assert ok(aws(server, a, "cleanrooms", "list-tags-for-resource", "--resource-arn", arn)) == {
        "tags": {"origin": "cli", "team": "data", "stage": "test"}}
    assert ok(aws(server, a, "cleanrooms", "untag-resource", "--resource-arn", arn, "--tag-keys",
                  "origin", "stage")) is None
    assert ok(aws(server, a, "cleanrooms", "list-tags-for-resource", "--resource-arn", arn)) == {
        "tags": {"team": "data"}}

    assert ok(aws(server, b, "cleanrooms", "delete-membership", "--membership-identifier",
                  membership["id"])) is None
    assert ok(aws(server, b, "cleanrooms", "list-memberships", "--status", "ACTIVE")) == {
        "membershipSummaries": []}


def test_aws_cli_shorthand_create(server):
    a = server.new_account()
    created = ok(aws(server, a, "cleanrooms", "create-collaboration", "--members", "[]", "--name", "shorthand",
                     "--creator-member-abilities", "CAN_QUERY", "CAN_RECEIVE_RESULTS",
                     "--creator-display-name", "Ay", "--query-log-status", "DISABLED",
                     "--data-encryption-metadata",
                     "allowCleartext=true,allowDuplicates=false,allowJoinsOnColumnsWithDifferentNames=false,"
                     "preserveNulls=true"))["collaboration"]
    assert created["name"] == "shorthand"
    assert created["dataEncryptionMetadata"] == {"allowCleartext": True, "allowDuplicates": False,
                                                 "allowJoinsOnColumnsWithDifferentNames": False,
                                                 "preserveNulls": True}


def test_aws_cli_reports_server_validation_errors(server):
    a = server.new_account()
    proc = aws(server, a, "cleanrooms", "list-collaborations", "--member-status", "LEFT")
    assert proc.returncode == 255, (proc.returncode, proc.stderr)  # v1: 255 for service errors (v2: 254)
    assert "An error occurred (ValidationException) when calling the ListCollaborations operation" in proc.stderr
    assert "memberStatus" in proc.stderr
    assert proc.stdout == ""


def test_aws_cli_reports_access_denied(server):
    a = server.new_account()
    proc = aws(server, a, "cleanrooms", "get-collaboration", "--collaboration-identifier",
               "00000000-0000-4000-8000-000000000000")
    assert proc.returncode == 255, (proc.returncode, proc.stderr)  # v1: 255 for service errors (v2: 254)
    assert "(AccessDeniedException) when calling the GetCollaboration operation" in proc.stderr


def test_aws_cli_with_an_unknown_key_is_refused(server):
    proc = aws(server, _Keys("AKIANOSUCHKEY0000003", "nope"), "cleanrooms", "list-collaborations")
    assert proc.returncode == 255, (proc.returncode, proc.stderr)  # v1: 255 for service errors (v2: 254)
    assert "(UnrecognizedClientException) when calling the ListCollaborations operation" in proc.stderr

