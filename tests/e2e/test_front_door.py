"""The front door, as a newcomer meets it: the real `opencleanrooms` command in a subprocess.

Every setup error is one line on stderr and a non-zero exit, never a traceback; the banner comes only once the
port is bound and its "try:" command works as pasted; authentication failures are logged with their reason.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest

from opencleanrooms import __version__
from opencleanrooms.auth.demo import DEMO_ACCOUNTS
from tests.support.server import ServerProcess

CLI = [sys.executable, "-m", "opencleanrooms"]
# Tests of the command on a data directory of its own (`--data-dir`: SQLite), or on the pytest plugin's server (its
# own SQLite too), whichever backend the suite runs on: skipped in the PostgreSQL pass (tests/conftest.py). The test
# on a ServerProcess, whose database is the backend under test, carries no marker.
own_storage = pytest.mark.backend_independent
BIN = str(Path(sys.executable).parent)


def run(*args: str, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str, code: int | None = None) -> str:
    """Non-zero exit, exactly one line on stderr starting with `opencleanrooms:`, no traceback, nothing served."""
    assert result.returncode != 0, (result.stdout, result.stderr)
    if code is not None:
        assert result.returncode == code, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("opencleanrooms: "), lines[0]
    assert "Traceback" not in result.stderr + result.stdout
    assert "serving" not in result.stdout
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


@own_storage
def test_version():
    result = run("--version")
    assert (result.returncode, result.stdout.strip()) == (0, f"opencleanrooms {__version__}")


# ------------------------------------------------------------------------------------------------ setup errors


@own_storage
def test_config_file_missing_unreadable_or_invalid(tmp_path):
    data = str(tmp_path / "data")
    assert_one_line_error(run("serve", "--data-dir", data, "--config", str(tmp_path / "missing.toml")),
                          "cannot read config file", "missing.toml", "No such file", code=1)
    assert_one_line_error(run("serve", "--data-dir", data, "--config", str(tmp_path)), "is a directory", code=1)
    bad = tmp_path / "bad.toml"
    bad.write_text("port = \n")
    assert_one_line_error(run("serve", "--data-dir", data, "--config", str(bad)), "is not valid TOML", code=2)
    if os.geteuid() != 0:  # root reads anything
        secret = tmp_path / "secret.toml"
        secret.write_text("port = 8000\n")
        secret.chmod(0)
        assert_one_line_error(run("serve", "--data-dir", data, "--config", str(secret)), "Permission denied")


@own_storage
@pytest.mark.parametrize("text, fragment", [
    ('port = "abc"', "port must be an integer from 0 to 65535, not 'abc'"),
    ("port = 70000", "port must be an integer from 0 to 65535, not 70000"),
    ("workers = 0", "workers must be an integer of at least 1"),
    ('regions = "us-east-1"', "regions must be a non-empty list"),
    ('regions = ["us-east-99"]', "unknown region 'us-east-99'"),
    ("allow_demo_credentials = 1", "allow_demo_credentials must be true or false"),
    ("quotas = { members = 'ten' }", "quotas must be a table of integers"),
    ('log_level = "loud"', "log_level must be one of debug, info, warning, error"),
    ("max_body_bytes = -1", "max_body_bytes must be a positive integer"),
    ("colour = 'blue'", "unknown setting(s): colour"),
])
def test_bad_config_values_are_one_line(tmp_path, text, fragment):
    config = tmp_path / "server.toml"
    config.write_text(text + "\n")
    line = assert_one_line_error(run("serve", "--data-dir", str(tmp_path / "data"), "--config", str(config)),
                                 fragment, code=2)
    assert str(config) in line
    assert not (tmp_path / "data").exists()  # refused before anything was created


@own_storage
def test_data_dir_under_a_file_or_unwritable(tmp_path):
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    assert_one_line_error(run("serve", "--data-dir", str(a_file)), "is a file, not a directory", code=1)
    assert_one_line_error(run("serve", "--data-dir", str(a_file / "data")), "cannot create data directory",
                          "Not a directory", code=1)
    assert_one_line_error(run("serve", "--data-dir", "/proc"), "cannot write in data directory /proc", code=1)
    for command in (["migrate"], ["credentials", "list"], ["catalog", "list"]):
        assert_one_line_error(run(*command, "--data-dir", "/proc"), "data directory /proc", code=1)


@own_storage
def test_database_url_invalid_unreachable_or_driver_missing(tmp_path):
    assert_one_line_error(run("serve", "--database-url", "not a url"), "the database URL is not valid", code=1)
    assert_one_line_error(run("migrate", "--database-url", "nosuchdb://x/y"), "nosuchdb", code=1)
    line = assert_one_line_error(run("migrate", "--database-url", f"sqlite:///{tmp_path}/missing/dir/x.db"),
                                 "cannot open the database", code=1)
    assert "unable to open database file" in line
    # The driver missing, whether or not it is installed here: the command runs with psycopg's import blocked.
    blocked = ("import sys; sys.modules['psycopg'] = sys.modules['psycopg2'] = None; "
               "from opencleanrooms.cli import main; raise SystemExit(main(sys.argv[1:]))")
    result = subprocess.run([sys.executable, "-c", blocked, "serve", "--data-dir", str(tmp_path / "d"),
                             "--database-url", "postgresql://user:hunter2@localhost:1/db"],
                            capture_output=True, text=True, timeout=60)
    line = assert_one_line_error(result, "pip install 'opencleanrooms[postgresql]'", code=1)
    assert "hunter2" not in line


@own_storage
def test_unknown_region_is_refused_at_start(tmp_path):
    line = assert_one_line_error(run("serve", "--data-dir", str(tmp_path / "d"), "--region", "us-east-99"),
                                 "unknown region 'us-east-99'", "like us-east-1", "us-west-2", code=2)
    assert "ap-south-1" in line  # every region of the aws partition is accepted, and listed


@own_storage
def test_port_in_use_is_one_line(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = run("serve", "--data-dir", str(tmp_path / "data"), "--port", str(port), timeout=30)
    assert_one_line_error(result, f"cannot listen on 127.0.0.1:{port}", "already in use", code=1)
    assert result.stdout == ""  # no banner for a server that never served


# ------------------------------------------------------------------------------------------------ the banner


def _start_and_read_banner(tmp_path, *args: str, env: dict | None = None):
    log = open(tmp_path / "serve.log", "w")
    process = subprocess.Popen([*CLI, "serve", "--data-dir", str(tmp_path / "data"), "--port", "0", *args],
                               stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        text = (tmp_path / "serve.log").read_text()
        if "  try: " in text:
            return process, text
        if process.poll() is not None:
            raise AssertionError(text)
        time.sleep(0.05)
    process.kill()
    raise AssertionError("no banner")


@own_storage
def test_banner_comes_after_the_port_is_bound_and_its_command_works(tmp_path):
    env = {"PATH": BIN + os.pathsep + os.environ.get("PATH", ""), "HOME": str(tmp_path),
           "AWS_CONFIG_FILE": str(tmp_path / "none"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")}
    process, banner = _start_and_read_banner(tmp_path, env=env)
    try:
        port = int(re.search(r"serving the Clean Rooms API at http://localhost:(\d+)", banner)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass  # bound and listening by the time the banner is out
        command = re.search(r"  try: (.+)", banner)[1]
        key, secret = DEMO_ACCOUNTS[0][1:]
        assert command.startswith(f"AWS_ACCESS_KEY_ID={key} AWS_SECRET_ACCESS_KEY={secret} aws cleanrooms ")
        pasted = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=60,
                                env={k: v for k, v in env.items()} | {"LANG": "C.UTF-8"})
        assert pasted.returncode == 0, pasted.stderr
        assert '"collaborationList": []' in pasted.stdout
    finally:
        process.terminate()
        process.wait(timeout=15)


@own_storage
def test_banner_without_an_aws_cli_offers_python(tmp_path):
    env = {"PATH": "/usr/bin:/bin"}  # no AWS CLI on PATH: the venv's Python with boto3 instead
    if any(os.access(os.path.join(d, "aws"), os.X_OK) for d in env["PATH"].split(os.pathsep)):
        pytest.skip("an AWS CLI is installed system-wide")
    process, banner = _start_and_read_banner(tmp_path, env=env)
    try:
        command = re.search(r"  try: (.+)", banner)[1]
        assert "import boto3" in command
        pasted = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=60,
                                env={"PATH": env["PATH"], "HOME": str(tmp_path)})
        assert (pasted.returncode, pasted.stdout.strip()) == (0, "[]"), pasted.stderr
    finally:
        process.terminate()
        process.wait(timeout=15)


@own_storage
def test_port_zero_serves_on_the_port_the_banner_shows(tmp_path):
    process, banner = _start_and_read_banner(tmp_path)
    try:
        port = int(re.search(r"http://localhost:(\d+)", banner)[1])
        assert port != 0
        key, secret = "AKIAPORTZERO00000001", "port-zero-secret"
        created = run("credentials", "create", "--data-dir", str(tmp_path / "data"), "--account-id", "123456789012",
                      "--access-key-id", key, "--secret-access-key", secret)
        assert created.returncode == 0, created.stderr
        client = boto3.client("cleanrooms", endpoint_url=f"http://localhost:{port}", region_name="us-east-1",
                              aws_access_key_id=key, aws_secret_access_key=secret)
        assert client.list_collaborations()["collaborationList"] == []
    finally:
        process.terminate()
        process.wait(timeout=15)


# ------------------------------------------------------------------------------------------------ auth log


def test_authentication_failures_are_logged_with_their_reason(tmp_path):
    server = ServerProcess(tmp_path / "data", "--region", "us-east-1", "--region", "eu-west-1").start()
    try:
        import botocore.exceptions

        account = server.new_account()
        unknown = type(account)("123456789012", "AKIANOSUCHKEY0000009", "not-the-secret-0001")
        wrong_secret = type(account)(account.account_id, account.access_key_id, "not-the-secret-0002")
        cases = [
            (server.client(unknown, check=False), "UnrecognizedClientException",
             "unknown access key id 'AKIANOSUCHKEY0000009'"),
            (server.client(wrong_secret, check=False), "InvalidSignatureException",
             f"signature mismatch for key {account.access_key_id}"),
            (server.client(account, region="ap-south-1", check=False), "InvalidSignatureException",
             "signed for region 'ap-south-1'; this server serves eu-west-1, us-east-1"),
        ]
        for client, code, _reason in cases:
            with pytest.raises(botocore.exceptions.ClientError) as info:
                client.list_collaborations()
            assert info.value.response["Error"]["Code"] == code
        message = info.value.response["Error"]["Message"]
        assert message.endswith("This server serves: eu-west-1, us-east-1.")
        import urllib.error
        import urllib.request

        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(server.endpoint + "/collaborations", timeout=5)
        time.sleep(0.5)
        log = server.log_tail(100_000)
        for _client, code, reason in cases:
            line = next((l for l in log.splitlines() if reason in l), None)
            assert line is not None, (reason, log[-3000:])
            assert f"auth_error={code}" in line and "status=403" in line
            assert "operation=ListCollaborations" in line
        assert 'reason="missing Authorization header (unsigned request)"' in log
        assert "not-the-secret" not in log
    finally:
        server.stop()


# ------------------------------------------------------------------------------------------------ catalog add


@own_storage
def test_catalog_add_refuses_missing_locations_and_blank_csvs(tmp_path):
    data = str(tmp_path / "data")
    table = ["--data-dir", data, "--account-id", "111111111111", "--database", "sales", "--table", "orders"]
    missing = run("catalog", "add", *table, "--location", str(tmp_path / "nowhere.csv"))
    assert missing.returncode == 1, missing.stderr
    assert "does not exist" in missing.stderr and "nothing was added" in missing.stderr
    assert "Traceback" not in missing.stderr
    assert run("catalog", "list", "--data-dir", data).stdout == ""
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "header.csv").write_text("user_id,spend\n")
    empty = run("catalog", "add", *table, "--location", str(tmp_path / "empty.csv"))
    assert empty.returncode == 1 and "is empty" in empty.stderr, empty.stderr
    header = run("catalog", "add", *table, "--location", str(tmp_path / "header.csv"))
    assert header.returncode == 1 and "has a header line but no data rows" in header.stderr, header.stderr
    assert run("catalog", "list", "--data-dir", data).stdout == ""
    later = run("catalog", "add", *table, "--location", str(tmp_path / "nowhere.csv"), "--no-check")
    assert later.returncode == 0 and later.stdout.startswith("added: 111111111111"), later.stderr
    (tmp_path / "ok.csv").write_text("user_id,spend\nu1,2.5\n")
    ok = run("catalog", "add", *table, "--location", str(tmp_path / "ok.csv"))
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.splitlines()[1:] == ["  user_id  string", "  spend    double"]
    (tmp_path / "ok.csv").write_text("user_id,spend\n")  # emptied after it was added: refused when read
    schema = run("catalog", "schema", *table)
    assert schema.returncode == 1 and "has a header line but no data rows" in schema.stderr


@own_storage
def test_a_csv_emptied_after_it_was_added_is_refused_when_read(cleanrooms_server, cleanrooms_accounts, tmp_path):
    """The API side of the same rule, on the pytest plugin's server: the data went bad after `catalog add`. The
    caller gets the request id; the server log has the reason (locations are the operator's business)."""
    alice = cleanrooms_accounts.alice
    orders = tmp_path / "orders.csv"
    orders.write_text("order_id,total\n1,2.5\n")
    alice.add_table("sales", "orders", orders)
    orders.write_text("order_id,total\n")
    with pytest.raises(alice.client.exceptions.ValidationException) as info:
        alice.client.create_configured_table(
            name="orders", analysisMethod="DIRECT_QUERY", allowedColumns=["order_id"],
            tableReference={"glue": {"databaseName": "sales", "tableName": "orders"}})
    message = info.value.response["Error"]["Message"]
    assert "Table sales.orders cannot be read" in message
    request_id = re.search(r"request ID ([0-9a-f-]{36})", message)[1]
    time.sleep(0.3)
    logged = [line for line in cleanrooms_server.log_text().splitlines() if request_id in line]
    assert any("has a header line but no data rows" in line for line in logged), logged
