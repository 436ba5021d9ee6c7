"""Fixtures for the catalog tests: a real database (of the backend under test), and moto's server as a real S3-compatible endpoint."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

import boto3
import pytest

from opencleanrooms.catalog import S3Settings, store
from opencleanrooms.storage.database import Database
from tests.support.backend import database_url
from tests.support.server import free_port

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
    port = free_port()
    log_path = tmp_path_factory.mktemp("moto") / "moto.log"
    log = open(log_path, "wb")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                               stdout=log, stderr=subprocess.STDOUT, env=env)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"moto server exited: {log_path.read_text(errors='replace')[-2000:]}")
        try:
            urllib.request.urlopen(endpoint + "/", timeout=1)
            break
        except urllib.error.HTTPError:
            break
        except OSError:
            if time.monotonic() > deadline:
                process.kill()
                raise RuntimeError("moto server did not start") from None
            time.sleep(0.1)
    yield endpoint
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    log.close()


@pytest.fixture(scope="session")
def s3_client(s3_endpoint):
    return boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1", aws_access_key_id=S3_KEY,
                        aws_secret_access_key=S3_SECRET)


@pytest.fixture
def s3_settings(s3_endpoint, tmp_path):
    return S3Settings(endpoint_url=s3_endpoint, region="us-east-1", access_key_id=S3_KEY,
                      secret_access_key=S3_SECRET, cache_dir=str(tmp_path / "s3cache"))
