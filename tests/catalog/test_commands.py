"""`opencleanrooms catalog ...`: the subcommands registered on a parser built as the project's CLI builds its own,
with the CLI's real storage flags and settings, run in process against a real data directory."""

from __future__ import annotations

import argparse
import os

import duckdb
import pytest

from opencleanrooms import cli
from opencleanrooms.catalog.commands import register_cli
from tests.catalog.conftest import S3_KEY, S3_SECRET


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="opencleanrooms")
    commands = parser.add_subparsers(metavar="COMMAND")
    register_cli(commands, storage_flags=cli._storage_flags, settings_from_args=cli._settings)
    args = parser.parse_args(list(argv))
    return args.func(args)


@pytest.fixture
def data_dir(tmp_path):
    return str(tmp_path / "data")


def test_add_list_schema_remove(tmp_path, data_dir, capsys):
    path = tmp_path / "orders.parquet"
    with duckdb.connect() as con:
        con.execute(f"COPY (SELECT 1 AS order_id, 2.5::DECIMAL(10,2) AS total) TO '{path}' (FORMAT parquet)")
    assert run("catalog", "add", "--data-dir", data_dir, "--account-id", "111111111111", "--database", "Sales",
               "--table", "orders", "--location", str(path)) == 0
    out = capsys.readouterr().out
    assert f"added: 111111111111  *  sales.orders  parquet  {path}" in out
    assert "order_id  int" in out and "total     decimal(10,2)" in out
    missing = ("catalog", "add", "--data-dir", data_dir, "--account-id", "222222222222", "--region", "eu-west-1",
               "--database", "d", "--table", "t", "--location", str(tmp_path / "x.csv"), "--no-header",
               "--delimiter", "\\t")
    assert run(*missing) == 1  # the location does not exist: refused, nothing stored
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "Table location" in captured.err and "does not exist" in captured.err and "nothing was added" in captured.err
    assert run(*missing, "--no-check") == 0  # for data that arrives later
    captured = capsys.readouterr()
    assert captured.out.startswith("added: 222222222222  eu-west-1  d.t  csv")
    assert run("catalog", "list", "--data-dir", data_dir) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2
    assert run("catalog", "list", "--data-dir", data_dir, "--account-id", "222222222222") == 0
    listed = capsys.readouterr().out
    assert "d.t  csv" in listed and "header=False" in listed and "delimiter='\\t'" in listed
    assert run("catalog", "schema", "--data-dir", data_dir, "--account-id", "111111111111", "--database", "sales",
               "--table", "ORDERS") == 0
    assert "order_id  int" in capsys.readouterr().out
    assert run("catalog", "schema", "--data-dir", data_dir, "--account-id", "222222222222", "--region",
               "eu-west-1", "--database", "d", "--table", "t") == 1
    assert run("catalog", "schema", "--data-dir", data_dir, "--account-id", "333333333333", "--database", "sales",
               "--table", "orders") == 1
    assert "Table sales.orders not found in the catalog of account 333333333333" in capsys.readouterr().err
    assert run("catalog", "remove", "--data-dir", data_dir, "--account-id", "111111111111", "--database", "sales",
               "--table", "orders") == 0
    assert run("catalog", "remove", "--data-dir", data_dir, "--account-id", "111111111111", "--database", "sales",
               "--table", "orders") == 1
    assert "no such table" in capsys.readouterr().err


def test_invalid_input_is_a_value_error(tmp_path, data_dir):
    with pytest.raises(ValueError, match="12 digits"):  # cli.main turns it into "opencleanrooms: ..." and exit 2
        run("catalog", "add", "--data-dir", data_dir, "--account-id", "42", "--database", "d", "--table", "t",
            "--location", str(tmp_path))


def test_import_samples(data_dir, capsys):
    assert run("catalog", "import", "--data-dir", data_dir, "--samples") == 0
    out = capsys.readouterr().out
    assert "imported 2 table(s)" in out
    assert run("catalog", "schema", "--data-dir", data_dir, "--account-id", "222222222222",
               "--database", "publisher", "--table", "impressions") == 0
    assert "impression_time  timestamp" in capsys.readouterr().out


def test_import_file(tmp_path, data_dir, capsys):
    catalog = tmp_path / "c.toml"
    catalog.write_text('[[tables]]\naccount_id = "111111111111"\ndatabase = "d"\ntable = "t"\nlocation = "t.csv"\n')
    assert run("catalog", "import", "--data-dir", data_dir, str(catalog)) == 0
    assert f"111111111111  *  d.t  csv  {tmp_path / 't.csv'}" in capsys.readouterr().out


def test_add_s3_table_with_settings_from_the_environment(s3_client, s3_endpoint, data_dir, monkeypatch, capsys):
    s3_client.create_bucket(Bucket="cli-bucket")
    s3_client.put_object(Bucket="cli-bucket", Key="t/a.csv", Body=b"user_id,n\nu1,1\n")
    monkeypatch.setenv("OPENCLEANROOMS_S3_ENDPOINT_URL", s3_endpoint)
    monkeypatch.setenv("OPENCLEANROOMS_S3_ACCESS_KEY_ID", S3_KEY)
    monkeypatch.setenv("OPENCLEANROOMS_S3_SECRET_ACCESS_KEY", S3_SECRET)
    assert run("catalog", "add", "--data-dir", data_dir, "--account-id", "111111111111", "--database", "d",
               "--table", "t", "--location", "s3://cli-bucket/t/") == 0
    out = capsys.readouterr().out
    assert "added: 111111111111  *  d.t  auto  s3://cli-bucket/t/" in out
    assert "user_id  string" in out and "n        bigint" in out
    assert os.listdir(os.path.join(data_dir, "cache", "s3"))  # the default cache is under the data dir
