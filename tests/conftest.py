"""Shared fixtures: one real server process for the session, and fresh accounts (with checked clients) per test."""

from __future__ import annotations

import os
import signal

import pytest

from tests.support import backend
from tests.support.builders import Party
from tests.support.server import ServerProcess

_private_postgres = None


def pytest_configure(config):
    """OPENCLEANROOMS_TEST_BACKEND=postgresql without a URL: start a private PostgreSQL server for the session."""
    global _private_postgres
    config.addinivalue_line("markers", "sqlite_only(reason): the test needs the SQLite backend; skipped on others")
    config.addinivalue_line("markers", "spark_job: runs a real PySpark job (a JVM in the job sandbox, 10-40 s)")
    wanted = os.environ.get(backend.BACKEND_ENV, "").lower()
    if wanted not in ("", "sqlite", "postgresql"):
        raise pytest.UsageError(f"{backend.BACKEND_ENV} must be sqlite or postgresql, not {wanted!r}")
    if wanted == "postgresql" and not os.environ.get(backend.URL_ENV):
        from tests.support.postgres import PrivateServer

        _private_postgres = PrivateServer().start()
        os.environ[backend.URL_ENV] = _private_postgres.url
        if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:  # a terminated session still stops its server
            signal.signal(signal.SIGTERM, signal.default_int_handler)


def pytest_unconfigure(config):
    global _private_postgres
    try:
        backend.drop_created()
    finally:
        if _private_postgres is not None:
            _private_postgres.stop()
            os.environ.pop(backend.URL_ENV, None)
            _private_postgres = None


def pytest_report_header(config):
    return f"database backend: {backend.name()}"


def pytest_collection_modifyitems(config, items):
    if not backend.is_postgresql():
        return
    for item in items:
        marker = item.get_closest_marker("sqlite_only")
        if marker is not None:
            reason = marker.args[0] if marker.args else marker.kwargs.get("reason", "")
            item.add_marker(pytest.mark.skip(reason=f"SQLite only: {reason}"))

@pytest.fixture(scope="session")
def spark_remote():
    """The address of a local Spark Connect server for the session (started on first use), or a skip saying why
    Spark tests cannot run here."""
    from tests.support import spark

    reason = spark.skip_reason()
    if reason:
        pytest.skip(reason)
    server = spark.LocalSparkConnect().start()
    try:
        yield server.remote
    finally:
        server.stop()


# Generous quotas for the shared server so that tests can create hundreds of resources; quota behaviour itself is
# tested on servers started with the defaults.
SHARED_SERVER_QUOTAS = ("--quota", "collaborations=5000", "--quota", "memberships=5000")


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    process = ServerProcess(tmp_path_factory.mktemp("server"), *SHARED_SERVER_QUOTAS).start()
    yield process
    process.stop()


@pytest.fixture
def party(server):
    """Factory: party() -> a new account with a conformance-checked client."""
    return lambda: Party(server)
