"""Results on an S3-compatible endpoint (moto's server): where AWS puts them, and awswrangler reading them unmodified.

The server is configured with moto's S3 as its `[s3]` endpoint; the tables stay local files. awswrangler's
`cleanrooms.read_sql_query` is called exactly as a user would, its clients pointed at our server and at moto with
the standard `AWS_ENDPOINT_URL_<SERVICE>` variables.
"""

from __future__ import annotations

import contextlib
import io

import boto3
import pyarrow.parquet as pq
import pytest

from tests.catalog.conftest import S3_KEY, S3_SECRET
from tests.e2e.test_protected_queries import build_world, expected, start, wait
from tests.support.builders import Party
from tests.support.moto import MotoS3
from tests.support.server import ServerProcess

SQL = ("SELECT c.segment, COUNT(DISTINCT i.user_id) AS users, SUM(i.clicks) AS clicks FROM customers c "
       "INNER JOIN impressions i ON c.user_id = i.user_id GROUP BY c.segment")
PLAIN = ("SELECT c.segment, COUNT(DISTINCT i.user_id), SUM(i.clicks) FROM customers c JOIN impressions i "
         "ON c.user_id = i.user_id GROUP BY c.segment")


@contextlib.contextmanager
def s3_query_world(base, buckets, **world):
    """A server with moto's S3 as its S3 endpoint, the given buckets on it, and test_protected_queries' world
    (`world` goes to its build_world): (server, S3 client, moto, world)."""
    with MotoS3(base, key=S3_KEY, secret=S3_SECRET) as moto:
        server = ServerProcess(base / "server", "--config", str(moto.server_config(base / "config.toml"))).start()
        try:
            s3 = moto.client()
            for bucket in buckets:
                s3.create_bucket(Bucket=bucket)
            yield server, s3, moto, build_world(server, lambda: Party(server), base, **world)
        finally:
            server.stop()


@pytest.fixture(scope="module")
def s3_world(tmp_path_factory):
    with s3_query_world(tmp_path_factory.mktemp("results-s3"), ("alice-results", "wrangler-results")) as (
            server, s3, moto, world):
        yield server, s3, moto.endpoint, world


def test_results_are_written_to_the_s3_location_reported(s3_world):
    server, s3, _, world = s3_world
    query = start(world, SQL, resultConfiguration={"outputConfiguration": {"s3": {
        "bucket": "alice-results", "keyPrefix": "runs/daily", "resultFormat": "PARQUET", "singleFileOutput": True}}})
    done = wait(world.alice.client, world.mid(world.alice), query["id"])
    assert done["status"] == "SUCCESS", done
    location = done["result"]["output"]["s3"]["location"]
    assert location == f"s3://alice-results/runs/daily/{query['id']}/result.parquet"
    body = s3.get_object(Bucket="alice-results", Key=location.split("/", 3)[3])["Body"].read()
    table = pq.read_table(io.BytesIO(body))
    assert sorted(tuple(r.values()) for r in table.to_pylist()) == expected(world, PLAIN)


def test_awswrangler_read_sql_query_works_unmodified(s3_world, monkeypatch):
    wr = pytest.importorskip("awswrangler")
    server, _, endpoint, world = s3_world
    monkeypatch.setenv("AWS_ENDPOINT_URL_CLEANROOMS", server.endpoint)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", endpoint)
    session = boto3.Session(aws_access_key_id=world.alice.account.access_key_id,
                            aws_secret_access_key=world.alice.account.secret_access_key, region_name="us-east-1")
    frame = wr.cleanrooms.read_sql_query(sql=SQL, membership_id=world.mid(world.alice),
                                         output_bucket="wrangler-results", output_prefix="wr", keep_files=False,
                                         boto3_session=session)
    assert sorted(tuple(r) for r in frame.itertuples(index=False, name=None)) == expected(world, PLAIN)
    with pytest.raises(wr.exceptions.QueryFailed):  # a refused query surfaces as awswrangler's failure
        wr.cleanrooms.read_sql_query(sql="SELECT user_id FROM impressions", membership_id=world.mid(world.alice),
                                     output_bucket="wrangler-results", output_prefix="wr", boto3_session=session)
