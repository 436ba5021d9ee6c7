"""The bundled sample tables: what the generator writes, what the sample catalog maps, and the overlap."""

from __future__ import annotations

import os

import duckdb

import opencleanrooms.samples
from opencleanrooms.catalog import Column, prepare_scan, read_schema, resolve
from opencleanrooms.catalog.commands import import_file, samples_catalog_path
from opencleanrooms.samples import generate

SAMPLES = os.path.dirname(opencleanrooms.samples.__file__)


def test_committed_files_are_what_the_generator_writes(tmp_path):
    generate.main(["--out", str(tmp_path)])
    assert (tmp_path / "impressions.csv").read_bytes() == open(os.path.join(SAMPLES, "impressions.csv"), "rb").read()
    with duckdb.connect() as con:
        query = "SELECT * FROM read_parquet('{}') ORDER BY user_id"
        fresh = con.execute(query.format(tmp_path / "customers.parquet")).fetchall()
        committed = con.execute(query.format(os.path.join(SAMPLES, "customers.parquet"))).fetchall()
    assert fresh == committed and len(fresh) == generate.CUSTOMERS


def test_sample_catalog_resolves_for_the_demo_accounts(db):
    assert samples_catalog_path() == os.path.join(SAMPLES, "catalog.toml")
    import_file(db, samples_catalog_path())
    with db.read() as conn:
        customers = resolve(conn, "111111111111", "us-east-1", "advertiser", "customers")
        impressions = resolve(conn, "222222222222", "eu-west-1", "publisher", "impressions")
        assert resolve(conn, "222222222222", "us-east-1", "advertiser", "customers") is None
    assert read_schema(customers, cache=None) == [
        Column("user_id", "string"), Column("email_hash", "string"), Column("segment", "string"),
        Column("age_band", "string"), Column("signup_date", "date"), Column("lifetime_value", "double")]
    assert read_schema(impressions, cache=None) == [
        Column("user_id", "string"), Column("campaign_id", "string"), Column("impression_time", "timestamp"),
        Column("clicks", "bigint"), Column("spend", "double")]
    with duckdb.connect() as con:
        counts = con.execute(
            f"SELECT (SELECT count(*) FROM {prepare_scan(customers).sql()}), "
            f"(SELECT count(*) FROM {prepare_scan(impressions).sql()}), "
            f"(SELECT count(DISTINCT c.user_id) FROM {prepare_scan(customers).sql()} c "
            f" JOIN {prepare_scan(impressions).sql()} i ON c.user_id = i.user_id)").fetchone()
    assert counts == (300, 500, 150)
