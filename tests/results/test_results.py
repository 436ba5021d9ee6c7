"""Result files: CSV and Parquet, single and multiple files, local directory and S3 (moto's server), read back."""

from __future__ import annotations

import datetime
import decimal
import os
import uuid

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from botocore.stub import Stubber

from opencleanrooms import objstore
from opencleanrooms.catalog import S3Settings
from opencleanrooms.catalog import s3 as catalog_s3
from opencleanrooms.results import (
    LocalDestination,
    ResultWriteError,
    S3Destination,
    read_result,
    result_key_prefix,
    write_result,
)
from tests.support.server import free_port


def sample(rows: int = 10) -> pa.Table:
    return pa.table({
        "id": pa.array(range(rows), pa.int64()),
        "label": pa.array([f'a,"b"\n{i}' if i % 3 else None for i in range(rows)], pa.string()),
        "amount": pa.array([decimal.Decimal(i) / 4 for i in range(rows)], pa.decimal128(10, 2)),
        "ratio": pa.array([i / 3 for i in range(rows)], pa.float64()),
        "day": pa.array([datetime.date(2024, 1, 1) + datetime.timedelta(days=i) for i in range(rows)]),
        "at": pa.array([datetime.datetime(2024, 1, 1, 10, i % 60) for i in range(rows)], pa.timestamp("us")),
        "flag": pa.array([i % 2 == 0 for i in range(rows)]),
    })


def qid() -> str:
    return str(uuid.uuid4())


def assert_same_rows(read: pa.Table, original: pa.Table, fmt: str) -> None:
    assert read.column_names == original.column_names
    if fmt == "PARQUET":
        assert read.equals(original)
    else:
        assert read.num_rows == original.num_rows
        assert read.column("id").to_pylist() == original.column("id").to_pylist()
        assert read.column("label").to_pylist() == original.column("label").to_pylist()
        assert read.column("day").to_pylist() == original.column("day").to_pylist()


@pytest.mark.parametrize("fmt", ["CSV", "PARQUET"])
@pytest.mark.parametrize("single_file", [True, False])
def test_local_round_trip(tmp_path, fmt, single_file):
    table, query_id = sample(), qid()
    dest = LocalDestination(root=str(tmp_path / "results"), bucket="my-bucket", key_prefix="team/out")
    location = write_result(table, fmt=fmt, single_file=single_file, destination=dest, query_id=query_id,
                            max_rows_per_file=4)
    directory = tmp_path / "results" / "my-bucket" / "team" / "out" / query_id
    ext = ".csv" if fmt == "CSV" else ".parquet"
    if single_file:
        assert location == f"file://{directory}/result{ext}"
        assert sorted(os.listdir(directory)) == [f"result{ext}"]
    else:
        assert location == f"file://{directory}/"
        assert sorted(os.listdir(directory)) == [f"part-0000{i}{ext}" for i in range(3)]
    assert_same_rows(read_result(location), table, fmt)
    if fmt == "CSV":
        first = sorted(directory.iterdir())[0].read_text().splitlines()[0]
        assert first == '"id","label","amount","ratio","day","at","flag"'


def test_csv_text_for_nested_binary_and_nulls(tmp_path):
    table = pa.table({"tags": pa.array([[1, 2], None]), "s": pa.array([{"a": 1}, {"a": None}]),
                      "b": pa.array([b"\x00\xff", None]), "e": pa.array(["", None])})
    location = write_result(table, fmt="CSV", single_file=True, destination=LocalDestination(str(tmp_path)),
                            query_id=qid())
    text = open(location[len("file://"):]).read()
    assert text.splitlines() == ['"tags","s","b","e"', '"[1,2]","{""a"":1}","AP8=",""', ',"{""a"":null}",,']


@pytest.mark.parametrize("fmt", ["CSV", "PARQUET"])
def test_empty_result_still_has_its_columns(tmp_path, fmt):
    table = sample(0)
    location = write_result(table, fmt=fmt, single_file=False, destination=LocalDestination(str(tmp_path)),
                            query_id=qid())
    read = read_result(location)
    assert read.num_rows == 0 and read.column_names == table.column_names


def test_a_retry_replaces_the_files_of_an_earlier_attempt(tmp_path):
    dest, query_id = LocalDestination(str(tmp_path), bucket="b-1", key_prefix=""), qid()
    write_result(sample(10), fmt="PARQUET", single_file=False, destination=dest, query_id=query_id,
                 max_rows_per_file=3)
    location = write_result(sample(2), fmt="PARQUET", single_file=False, destination=dest, query_id=query_id,
                            max_rows_per_file=3)
    assert os.listdir(tmp_path / "b-1" / query_id) == ["part-00000.parquet"]
    assert read_result(location).num_rows == 2


def test_key_prefixes():
    q = "0b7e0a9c-0000-4000-8000-000000000001"
    assert result_key_prefix("", q) == f"{q}/"
    assert result_key_prefix("results", q) == f"results/{q}/"
    assert result_key_prefix("/a//b/", q) == f"a/b/{q}/"
    assert result_key_prefix("x=1/y.z-*!", q) == f"x=1/y.z-*!/{q}/"
    for bad in ("../escape", "a/./b", "a/../../b", "sp ace"):
        with pytest.raises(ValueError):
            result_key_prefix(bad, q)
    for bad_id in ("", "../x", "a/b"):
        with pytest.raises(ValueError):
            result_key_prefix("p", bad_id)


def test_local_destination_stays_inside_its_root(tmp_path):
    with pytest.raises(ValueError):
        write_result(sample(1), fmt="CSV", single_file=True, query_id=qid(),
                     destination=LocalDestination(str(tmp_path), bucket="b-1", key_prefix="../../etc"))
    with pytest.raises(ValueError):
        write_result(sample(1), fmt="CSV", single_file=True, query_id=qid(),
                     destination=LocalDestination(str(tmp_path), bucket="../x"))
    with pytest.raises(ValueError):
        write_result(sample(1), fmt="JSON", single_file=True, query_id=qid(), destination=LocalDestination("/x"))


@pytest.mark.parametrize("fmt", ["CSV", "PARQUET"])
@pytest.mark.parametrize("single_file", [True, False])
def test_s3_round_trip(s3_client, bucket, s3_settings, fmt, single_file):
    table, query_id = sample(), qid()
    dest = S3Destination(bucket=bucket, key_prefix="analysis/", settings=s3_settings)
    location = write_result(table, fmt=fmt, single_file=single_file, destination=dest, query_id=query_id,
                            max_rows_per_file=4)
    ext = ".csv" if fmt == "CSV" else ".parquet"
    keys = [o["Key"] for o in s3_client.list_objects_v2(Bucket=bucket)["Contents"]]
    if single_file:
        assert location == f"s3://{bucket}/analysis/{query_id}/result{ext}"
        assert keys == [f"analysis/{query_id}/result{ext}"]
    else:
        assert location == f"s3://{bucket}/analysis/{query_id}/"
        assert keys == [f"analysis/{query_id}/part-0000{i}{ext}" for i in range(3)]
    head = s3_client.head_object(Bucket=bucket, Key=keys[0])
    assert head["ContentType"] == ("text/csv" if fmt == "CSV" else "application/vnd.apache.parquet")
    assert_same_rows(read_result(location, s3_settings), table, fmt)


def test_s3_retry_deletes_stale_parts_and_spares_other_queries(s3_client, bucket, s3_settings):
    dest, query_id = S3Destination(bucket=bucket, key_prefix="", settings=s3_settings), qid()
    other = write_result(sample(3), fmt="PARQUET", single_file=True, destination=dest, query_id=query_id + "-x")
    write_result(sample(10), fmt="PARQUET", single_file=False, destination=dest, query_id=query_id,
                 max_rows_per_file=2)
    location = write_result(sample(3), fmt="PARQUET", single_file=False, destination=dest, query_id=query_id,
                            max_rows_per_file=2)
    keys = sorted(o["Key"] for o in s3_client.list_objects_v2(Bucket=bucket)["Contents"])
    assert keys == sorted([f"{query_id}/part-00000.parquet", f"{query_id}/part-00001.parquet",
                           f"{query_id}-x/result.parquet"])
    assert read_result(location, s3_settings).num_rows == 3
    assert read_result(other, s3_settings).num_rows == 3


def test_s3_no_such_bucket(s3_settings):
    dest = S3Destination(bucket=f"missing-{uuid.uuid4().hex[:8]}", key_prefix="p", settings=s3_settings)
    with pytest.raises(ResultWriteError) as info:
        write_result(sample(1), fmt="CSV", single_file=True, destination=dest, query_id=qid())
    assert info.value.code == "RESOURCE_NOT_FOUND" and not info.value.retryable
    assert dest.bucket in info.value.message


def test_s3_unreachable_endpoint_is_transient(tmp_path):
    settings = S3Settings(endpoint_url=f"http://127.0.0.1:{free_port()}", access_key_id="k", secret_access_key="s",
                          cache_dir=str(tmp_path))
    with pytest.raises(ResultWriteError) as info:
        write_result(sample(1), fmt="CSV", single_file=True, query_id=qid(),
                     destination=S3Destination(bucket="some-bucket", key_prefix="", settings=settings))
    assert info.value.code == "TRANSIENT_ERROR" and info.value.retryable
    assert "127.0.0.1" not in info.value.message and "secret" not in info.value.message


@pytest.mark.parametrize("error,status,code,retryable", [
    ("AccessDenied", 403, "RESOURCE_ACCESS_DENIED", False),
    ("NoSuchBucket", 404, "RESOURCE_NOT_FOUND", False),
    ("SlowDown", 503, "TRANSIENT_ERROR", True),
    ("InternalError", 500, "TRANSIENT_ERROR", True),
])
def test_s3_error_mapping(tmp_path, s3_endpoint, error, status, code, retryable):
    settings = S3Settings(endpoint_url=s3_endpoint, access_key_id="k", secret_access_key="s",
                          cache_dir=str(tmp_path / uuid.uuid4().hex))  # its own cached client, stubbed below
    client = catalog_s3.client(settings)
    with Stubber(client) as stub:
        stub.add_client_error("put_object", service_error_code=error, http_status_code=status)
        with pytest.raises(ResultWriteError) as info:
            write_result(sample(1), fmt="CSV", single_file=True, query_id=qid(),
                         destination=S3Destination(bucket="some-bucket", key_prefix="", settings=settings))
    assert (info.value.code, info.value.retryable) == (code, retryable)


def test_objstore_reads_what_it_wrote(s3_client, bucket, s3_settings, tmp_path):
    path = tmp_path / "x.bin"
    path.write_bytes(b"payload")
    objstore.put_file(s3_settings, bucket, "k/x.bin", str(path))
    assert objstore.get_bytes(s3_settings, bucket, "k/x.bin") == b"payload"
    assert [o.uri for o in objstore.list_objects(s3_settings, bucket, "k/")] == [f"s3://{bucket}/k/x.bin"]
    with pytest.raises(objstore.ObjectStoreError) as info:
        objstore.get_bytes(s3_settings, bucket, "k/missing")
    assert info.value.code == "RESOURCE_NOT_FOUND"


@pytest.mark.parametrize("single_file", [True, False])
def test_awswrangler_reads_and_deletes_the_location(s3_client, bucket, s3_settings, s3_endpoint, single_file):
    """What awswrangler.cleanrooms.read_sql_query does with `location`: wr.s3.read_parquet(path=location), then
    with keep_files=False wr.s3.delete_objects(path=location)."""
    wr = pytest.importorskip("awswrangler")
    import boto3

    from tests.catalog.conftest import S3_KEY, S3_SECRET

    session = boto3.Session(aws_access_key_id=S3_KEY, aws_secret_access_key=S3_SECRET, region_name="us-east-1")
    wr.config.s3_endpoint_url = s3_endpoint
    try:
        table, query_id = sample(), qid()
        dest = S3Destination(bucket=bucket, key_prefix="results", settings=s3_settings)
        write_result(sample(4), fmt="PARQUET", single_file=False, destination=dest, query_id=query_id + "0")
        location = write_result(table, fmt="PARQUET", single_file=single_file, destination=dest,
                                query_id=query_id, max_rows_per_file=4)
        df = wr.s3.read_parquet(path=location, boto3_session=session)
        assert df["id"].tolist() == list(range(10))
        assert list(df.columns) == table.column_names
        wr.s3.delete_objects(path=location, boto3_session=session)
        remaining = [o["Key"] for o in s3_client.list_objects_v2(Bucket=bucket).get("Contents", [])]
        assert remaining == [f"results/{query_id}0/part-00000.parquet"]
    finally:
        wr.config.reset("s3_endpoint_url")


def test_parquet_files_are_plain_parquet(tmp_path):
    location = write_result(sample(), fmt="PARQUET", single_file=True, destination=LocalDestination(str(tmp_path)),
                            query_id=qid())
    assert pq.read_table(location[len("file://"):]).num_rows == 10


def test_delete_local_result_deletes_only_below_the_results_directory(tmp_path):
    from opencleanrooms.results import LocalDestination, delete_local_result, write_result

    root, outside = tmp_path / "results", tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "keep.txt").write_text("x")
    location = write_result(pa.table({"a": [1]}), fmt="PARQUET", single_file=False,
                            destination=LocalDestination(str(root), "", "intermediate-tables/t"), query_id="q1")
    delete_local_result(outside.as_uri() + "/", str(root))
    delete_local_result(root.as_uri(), str(root))
    delete_local_result("s3://bucket/key/", str(root))
    assert (outside / "keep.txt").exists() and (root / "intermediate-tables" / "t" / "q1").exists()
    delete_local_result(location, str(root))
    assert not (root / "intermediate-tables" / "t" / "q1").exists() and root.exists()
    delete_local_result(location, str(root))  # already gone: no error
