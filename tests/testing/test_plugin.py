"""The pytest plugin (opencleanrooms.testing.plugin), as a team would use it: a test project of its own, run by
pytest in a subprocess, with the plugin found through its pytest11 entry point."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
import textwrap

LIGHT = "import sys, opencleanrooms.testing.plugin, opencleanrooms.testing; print(sorted(m for m in sys.modules if " \
        "m.split('.')[0] in ('boto3', 'botocore', 'sqlalchemy', 'duckdb', 'uvicorn') or m == 'opencleanrooms.app'))"


def test_the_plugin_is_an_entry_point_and_imports_nothing_heavy():
    points = [e for e in importlib.metadata.entry_points(group="pytest11") if e.name == "opencleanrooms"]
    assert [e.value for e in points] == ["opencleanrooms.testing.plugin"]
    result = subprocess.run([sys.executable, "-c", LIGHT], capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout.strip()) == (0, "[]"), result.stderr


def run_project(tmp_path, files: dict[str, str]) -> subprocess.CompletedProcess:
    for name, text in files.items():
        (tmp_path / name).write_text(textwrap.dedent(text))
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--basetemp",
                           str(tmp_path / "base")], cwd=tmp_path, capture_output=True, text=True, timeout=600)


def test_a_project_that_does_not_use_the_fixtures_starts_no_server(tmp_path):
    result = run_project(tmp_path, {"test_plain.py": """
        def test_plain():
            assert 1 + 1 == 2
    """})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout
    assert not list((tmp_path / "base").glob("opencleanrooms*"))  # no server data: no server started


def test_fixtures_settings_isolation_and_catalog_tables(tmp_path):
    result = run_project(tmp_path, {
        "conftest.py": """
            import pytest

            @pytest.fixture(scope="session")
            def cleanrooms_server_args():
                return ["--region", "eu-west-1", "--region", "us-east-1", "--quota", "collaborations=2"]
        """,
        "test_project.py": """
            import pytest
            from opencleanrooms.catalog import TableUnreadable

            def create(account, *members):
                return account.client.create_collaboration(
                    name="c", description="d", creatorDisplayName="me", creatorMemberAbilities=["CAN_QUERY"],
                    queryLogStatus="DISABLED",
                    members=[{"accountId": m.account_id, "displayName": "m", "memberAbilities": []}
                             for m in members])["collaboration"]

            def test_settings_reach_the_server(cleanrooms_server, cleanrooms_accounts):
                assert cleanrooms_server.region == "eu-west-1"
                assert cleanrooms_server.regions == ["eu-west-1", "us-east-1"]
                alice = cleanrooms_accounts.alice
                assert create(alice)["arn"].startswith(f"arn:aws:cleanrooms:eu-west-1:{alice.account_id}:")
                create(alice)
                with pytest.raises(alice.client.exceptions.ServiceQuotaExceededException):
                    create(alice)
                assert alice.client_in("us-east-1").list_collaborations()["collaborationList"] == []

            def test_each_test_gets_new_accounts(cleanrooms_accounts):
                alice, bob = cleanrooms_accounts.alice, cleanrooms_accounts["bob"]
                assert cleanrooms_accounts.alice is alice and alice.account_id != bob.account_id
                assert alice.client.list_collaborations()["collaborationList"] == []  # not the first test's
                c = create(alice, bob)
                invited = bob.client.list_collaborations(memberStatus="INVITED")["collaborationList"]
                assert [x["id"] for x in invited] == [c["id"]]

            def test_catalog_tables_from_files(cleanrooms_accounts, tmp_path):
                alice, bob = cleanrooms_accounts.alice, cleanrooms_accounts.bob
                (tmp_path / "orders.csv").write_text("order_id,total\\n1,2.5\\n")
                (tmp_path / "header.csv").write_text("order_id,total\\n")
                columns = alice.add_table("sales", "orders", tmp_path / "orders.csv")
                assert [(c.name, c.type) for c in columns] == [("order_id", "bigint"), ("total", "double")]
                with pytest.raises(TableUnreadable, match="no data rows"):
                    alice.add_table("sales", "empty", tmp_path / "header.csv")
                with pytest.raises(TableUnreadable, match="does not exist"):
                    alice.add_table("sales", "missing", tmp_path / "missing.csv")
                reference = {"glue": {"databaseName": "sales", "tableName": "orders"}}
                table = alice.client.create_configured_table(
                    name="orders", analysisMethod="DIRECT_QUERY", allowedColumns=["order_id", "total"],
                    tableReference=reference)["configuredTable"]
                assert table["tableReference"] == reference
                with pytest.raises(bob.client.exceptions.ValidationException):  # each account has its own catalog
                    bob.client.create_configured_table(name="orders", analysisMethod="DIRECT_QUERY",
                                                       allowedColumns=["order_id"], tableReference=reference)
        """,
    })
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    assert "3 passed" in result.stdout
    assert list((tmp_path / "base").glob("opencleanrooms*/opencleanrooms.db"))  # the server's data: in basetemp
