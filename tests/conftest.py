"""Shared fixtures: one real server process for the session, and fresh accounts (with checked clients) per test."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from tests.support import backend
from tests.support.builders import Party
from tests.support.server import ServerProcess

_private_postgres = None

# The PostgreSQL pass of .ci/run repeats the suite for what the database backend changes. Tests that never reach the
# suite's database (pure layers, engines, result writers, and commands that always use their own SQLite data
# directory) would only repeat the SQLite pass there, so they are marked `backend_independent` and skipped on
# PostgreSQL. Whole directories of such tests are listed here (tests/test_layers.py keeps policy/ and privacy/ free
# of storage); elsewhere a module or a test carries the marker itself. In the SQLite pass a marked test that reaches
# the suite's database (the `server` fixture, or any database made by tests/support/backend.py) fails, so that the
# marker cannot hide a test that the PostgreSQL pass should run.
BACKEND_INDEPENDENT = "runs in the SQLite pass only: does not depend on the database backend"
BACKEND_INDEPENDENT_DIRS = ("auth", "engines", "policy", "privacy", "protocol", "results", "runner", "support",
                            "testing", "traffic")
_TESTS = Path(__file__).parent


def pytest_configure(config):
    """OPENCLEANROOMS_TEST_BACKEND=postgresql without a URL: start a private PostgreSQL server for the session."""
    global _private_postgres
    config.addinivalue_line("markers", "sqlite_only(reason): the test needs the SQLite backend; skipped on others")
    config.addinivalue_line("markers",
                            f"backend_independent: never reaches the suite's database; {BACKEND_INDEPENDENT}")
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


def _backend_independent(item) -> bool:
    if item.get_closest_marker("backend_independent") is not None:
        return True
    try:
        relative = item.path.relative_to(_TESTS)
    except ValueError:
        return False
    return len(relative.parts) > 1 and relative.parts[0] in BACKEND_INDEPENDENT_DIRS


def pytest_collection_modifyitems(config, items):
    postgresql = backend.is_postgresql()
    for item in items:
        if _backend_independent(item):
            item.add_marker(pytest.mark.backend_independent)
            if postgresql:
                item.add_marker(pytest.mark.skip(reason=BACKEND_INDEPENDENT))
            elif "server" in item.fixturenames:
                raise pytest.UsageError(f"{item.nodeid} is marked backend_independent but uses the suite's server, "
                                        "whose database is the backend under test")
            continue
        marker = item.get_closest_marker("sqlite_only")
        if postgresql and marker is not None:
            reason = marker.args[0] if marker.args else marker.kwargs.get("reason", "")
            item.add_marker(pytest.mark.skip(reason=f"SQLite only: {reason}"))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """A backend_independent test (setup, call and teardown) may not make a database of the backend under test."""
    if item.get_closest_marker("backend_independent") is None:
        yield
        return
    backend.forbid(f"{item.nodeid} is marked backend_independent ({BACKEND_INDEPENDENT}) but reaches the suite's "
                   "database: remove the marker (or its directory from BACKEND_INDEPENDENT_DIRS in tests/conftest.py)")
    try:
        yield
    finally:
        backend.forbid(None)


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
