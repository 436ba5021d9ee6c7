"""moto's S3 server (the catalog tests' fixtures) as the S3-compatible endpoint results are written to."""

from __future__ import annotations

import uuid

import pytest

from opencleanrooms.catalog import S3Settings
from tests.catalog.conftest import S3_KEY, S3_SECRET, s3_client, s3_endpoint  # noqa: F401 - fixtures


@pytest.fixture
def s3_settings(s3_endpoint, tmp_path):  # noqa: F811
    return S3Settings(endpoint_url=s3_endpoint, region="us-east-1", access_key_id=S3_KEY,
                      secret_access_key=S3_SECRET, cache_dir=str(tmp_path / "s3cache"))


@pytest.fixture
def bucket(s3_client):  # noqa: F811
    name = f"results-{uuid.uuid4().hex[:12]}"
    s3_client.create_bucket(Bucket=name)
    return name
