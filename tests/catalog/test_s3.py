"""S3 locations against moto's server, a real S3-compatible endpoint in its own process."""

from __future__ import annotations

import io
import os
import uuid

import duckdb
import pytest

from opencleanrooms.catalog import (
    Column,
    S3Settings,
    SchemaCache,
    TableUnreadable,
    make_source,
    locate_scan,
    prepare_scan,
    read_schema,
)
from tests.catalog.conftest import S3_KEY, S3_SECRET
from tests.support.server import free_port

pytestmark = pytest.mark.backend_independent

A = "111111111111"


def parquet_bytes(select: str, tmp_path) -> bytes:
    path = tmp_path / f"{uuid.uuid4().hex}.parquet"
    with duckdb.connect() as con:
        con.execute(f"COPY ({select}) TO '{path}' (FORMAT parquet)")
    data = path.read_bytes()
    path.unlink()
    return data


@pytest.fixture
def bucket(s3_client):
    name = f"catalog-{uuid.uuid4().hex[:12]}"
    s3_client.create_bucket(Bucket=name)
    return name


def source(location, **options):
    return make_source(account_id=A, database="db", table="t", location=location, **options)


def cached_files(settings: S3Settings) -> dict[str, int]:
    found = {}
    for root, _dirs, names in os.walk(settings.cache_dir):
        for name in names:
            path = os.path.join(root, name)
            found[path] = os.stat(path).st_mtime_ns
    return found


def test_prefix_of_parquet_parts(s3_client, bucket, s3_settings, tmp_path):
    for i in range(3):
        s3_client.put_object(Bucket=bucket, Key=f"customers/part-{i}.parquet",
                             Body=parquet_bytes(f"SELECT range + {i * 10} AS id, 'x' AS seg FROM range(5)", tmp_path))
    s3_client.put_object(Bucket=bucket, Key="customers/_SUCCESS", Body=b"")
    s3_client.put_object(Bucket=bucket, Key="customers/", Body=b"")  # a "folder" marker
    s3_client.put_object(Bucket=bucket, Key="customers-old/part-0.parquet", Body=b"not under the prefix")
    for location in (f"s3://{bucket}/customers/", f"s3://{bucket}/customers"):
        src = source(location)
        assert src.format is None
        assert read_schema(src, s3_settings, cache=None) == [Column("id", "bigint"), Column("seg", "string")]
    scan = prepare_scan(source(f"s3://{bucket}/customers/"), s3_settings)
    assert len(scan.files) == 3 and all(f.startswith(s3_settings.cache_dir) for f in scan.files)
    with duckdb.connect() as con:
        assert con.execute(f"SELECT count(*), count(DISTINCT id) FROM {scan.sql()}").fetchone() == (15, 15)
    # for an engine that reads S3 itself (Spark): the objects' URIs, nothing downloaded for them
    located = locate_scan(source(f"s3://{bucket}/customers/"), s3_settings)
    assert located.files == tuple(f"s3://{bucket}/customers/part-{i}.parquet" for i in range(3))


def test_single_csv_object_and_whole_bucket(s3_client, bucket, s3_settings):
    s3_client.put_object(Bucket=bucket, Key="impressions.csv",
                         Body=b"user_id,clicks,spend\nu1,1,0.5\nu2,0,1.25\n")
    src = source(f"s3://{bucket}/impressions.csv")
    assert src.format == "csv"
    assert read_schema(src, s3_settings, cache=None) == [
        Column("user_id", "string"), Column("clicks", "bigint"), Column("spend", "double")]
    assert read_schema(source(f"s3://{bucket}"), s3_settings, cache=None)[0] == Column("user_id", "string")


def test_glob_in_last_segment(s3_client, bucket, s3_settings, tmp_path):
    s3_client.put_object(Bucket=bucket, Key="data/sales-2024.parquet", Body=parquet_bytes("SELECT 1 AS x", tmp_path))
    s3_client.put_object(Bucket=bucket, Key="data/sales-2025.parquet", Body=parquet_bytes("SELECT 2 AS x", tmp_path))
    s3_client.put_object(Bucket=bucket, Key="data/sub/sales-2026.parquet", Body=b"not matched: deeper")
    s3_client.put_object(Bucket=bucket, Key="data/other.parquet", Body=b"not matched")
    src = source(f"s3://{bucket}/data/sales-*.parquet")
    assert read_schema(src, s3_settings, cache=None) == [Column("x", "int")]
    scan = prepare_scan(src, s3_settings)
    with duckdb.connect() as con:
        assert con.execute(f"SELECT sum(x) FROM {scan.sql()}").fetchone() == (3,)
    with pytest.raises(TableUnreadable, match=r"No data files found at s3://.*/data/none-\*"):
        read_schema(source(f"s3://{bucket}/data/none-*.parquet"), s3_settings, cache=None)


def test_objects_are_cached_by_etag(s3_client, bucket, s3_settings, tmp_path):
    s3_client.put_object(Bucket=bucket, Key="t/a.parquet", Body=parquet_bytes("SELECT 1 AS a", tmp_path))
    src = source(f"s3://{bucket}/t/")
    assert read_schema(src, s3_settings, cache=None) == [Column("a", "int")]
    first = cached_files(s3_settings)
    assert len(first) == 1
    assert read_schema(src, s3_settings, cache=None) == [Column("a", "int")]  # no schema cache: files again
    assert cached_files(s3_settings) == first  # same file, same mtime: not downloaded again
    # a new version of the object (new ETag) is downloaded and replaces the old copy
    s3_client.put_object(Bucket=bucket, Key="t/a.parquet", Body=parquet_bytes("SELECT 1 AS a, 2 AS b", tmp_path))
    assert read_schema(src, s3_settings, cache=None) == [Column("a", "int"), Column("b", "int")]
    second = cached_files(s3_settings)
    assert len(second) == 1 and second.keys() != first.keys()


def test_schema_cache_keyed_by_etags(s3_client, bucket, s3_settings, tmp_path):
    s3_client.put_object(Bucket=bucket, Key="k/a.csv", Body=b"x\n1\n")
    cache = SchemaCache()
    src = source(f"s3://{bucket}/k/")
    assert read_schema(src, s3_settings, cache=cache) == [Column("x", "bigint")]
    assert read_schema(src, s3_settings, cache=cache) == [Column("x", "bigint")]
    assert (cache.hits, cache.misses) == (1, 1)
    s3_client.put_object(Bucket=bucket, Key="k/a.csv", Body=b"x,y\n1,b\n")
    assert read_schema(src, s3_settings, cache=cache) == [Column("x", "bigint"), Column("y", "string")]
    assert (cache.hits, cache.misses) == (1, 2)


def test_missing_bucket(s3_settings):
    with pytest.raises(TableUnreadable) as error:
        read_schema(source("s3://no-such-bucket-here/x/"), s3_settings, cache=None)
    message = str(error.value)
    assert message == "S3 bucket no-such-bucket-here does not exist (location s3://no-such-bucket-here/x/)"
    assert S3_SECRET not in message and S3_KEY not in message and s3_settings.endpoint_url not in message


def test_empty_prefix_and_bad_object(s3_client, bucket, s3_settings):
    with pytest.raises(TableUnreadable, match="No data files found at s3://"):
        read_schema(source(f"s3://{bucket}/nothing/"), s3_settings, cache=None)
    s3_client.put_object(Bucket=bucket, Key="bad/x.parquet", Body=io.BytesIO(b"x" * 100).read())
    with pytest.raises(TableUnreadable) as error:
        read_schema(source(f"s3://{bucket}/bad/"), s3_settings, cache=None)
    # DuckDB's message names the cached copy; the owner sees the object's URI instead of the server's path
    assert f"s3://{bucket}/bad/x.parquet" in str(error.value)
    assert s3_settings.cache_dir not in str(error.value)


def test_unreachable_endpoint_and_no_settings(tmp_path):
    settings = S3Settings(endpoint_url=f"http://127.0.0.1:{free_port()}", access_key_id=S3_KEY,
                          secret_access_key=S3_SECRET, cache_dir=str(tmp_path))
    with pytest.raises(TableUnreadable) as error:
        read_schema(source("s3://some-bucket/x/"), settings, cache=None)
    assert str(error.value) == "Could not connect to the S3 endpoint to read s3://some-bucket/x/"
    with pytest.raises(TableUnreadable, match="no S3 settings"):
        read_schema(source("s3://some-bucket/x/"), None, cache=None)


def test_settings_from_config_and_environment(tmp_path):
    settings = S3Settings.from_config(
        {"endpoint_url": "http://minio:9000", "access_key_id": "k", "secret_access_key": "s"},
        data_dir=str(tmp_path), environ={"OPENCLEANROOMS_S3_REGION": "eu-west-1",
                                         "OPENCLEANROOMS_S3_SECRET_ACCESS_KEY": "from-env"})
    assert settings == S3Settings(endpoint_url="http://minio:9000", region="eu-west-1", access_key_id="k",
                                  secret_access_key="from-env", cache_dir=str(tmp_path / "cache" / "s3"))
    assert "from-env" not in repr(settings)
    assert S3Settings.from_config({}, environ={}) == S3Settings()  # AWS's endpoint, anonymous
    with pytest.raises(ValueError, match="unknown S3 setting"):
        S3Settings.from_config({"bucket": "x"}, environ={})
    with pytest.raises(ValueError, match="both"):
        S3Settings(access_key_id="k")
    with pytest.raises(ValueError, match="endpoint_url"):
        S3Settings(endpoint_url="minio:9000")
