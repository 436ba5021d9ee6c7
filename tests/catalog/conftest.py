"""Fixtures for the catalog tests: a real database (of the backend under test), and moto's server as a real S3-compatible endpoint."""

from __future__ import annotations

import boto3
import pytest

from opencleanrooms.catalog import S3Settings, store
from opencleanrooms.storage.database import Database
from tests.support.backend import database_url
from tests.support.moto import MotoS3

S3_KEY, S3_SECRET = "catalogtestkey", "catalog-test-secret-do-not-print"


@pytest.fixture
def db(tmp_path):
    (tmp_path / "db").mkdir()
    database = Database(database_url(tmp_path / "db"))
    database.migrate()
    with database.write() as conn:
        store.create_table(conn)  # the migration step proposed for version 2
    yield database
    database.dispose()


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory):
    """moto's standalone server (S3 among others), in its own process on a free local port."""
    with MotoS3(tmp_path_factory.mktemp("moto"), key=S3_KEY, secret=S3_SECRET) as moto:
        yield moto.endpoint


@pytest.fixture(scope="session")
def s3_client(s3_endpoint):
    return boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1", aws_access_key_id=S3_KEY,
                        aws_secret_access_key=S3_SECRET)


@pytest.fixture
def s3_settings(s3_endpoint, tmp_path):
    return S3Settings(endpoint_url=s3_endpoint, region="us-east-1", access_key_id=S3_KEY,
                      secret_access_key=S3_SECRET, cache_dir=str(tmp_path / "s3cache"))
