"""Builds the server from its settings: database, credentials, model, services, pipeline, ASGI app."""

from __future__ import annotations

import functools
import logging
import os
import tempfile
import time

import sqlalchemy as sa

from opencleanrooms.auth.credentials import CredentialCache
from opencleanrooms.catalog import S3Settings
from opencleanrooms.config import ENV_SETTINGS, SetupError, Settings
from opencleanrooms.http.asgi import AsgiApp
from opencleanrooms.engines import Limits
from opencleanrooms.pipeline import Pipeline
from opencleanrooms.policy import warm_up
from opencleanrooms.protocol.model import load_service_model
from opencleanrooms.runner import JobSettings, QueryRunner, RunnerSettings
from opencleanrooms.services import registry, summaries
from opencleanrooms.services.context import RequestContext
from opencleanrooms.services.pagination import PageTokens
from opencleanrooms.services.quotas import Quotas
from opencleanrooms.storage import server_state
from opencleanrooms.storage.database import Database
from opencleanrooms.traffic.faults import FaultInjector
from opencleanrooms.traffic.throttle import Throttle

TOKEN_KEY_NAME = "pagination-token-key"


def open_database(settings: Settings) -> Database:
    """The migrated database. Every way this can fail for reasons of the environment (a data dir that cannot be
    created or written, a URL that does not parse, a driver that is not installed, a server that does not answer)
    is a SetupError with one line that says what to fix."""
    if settings.database_url is None:
        _prepare_data_dir(settings.data_dir)
    url = settings.resolved_database_url
    try:
        db = Database(url)
    except (sa.exc.ArgumentError, ValueError) as exc:
        raise SetupError(f"the database URL is not valid: {_first_line(exc)}") from None
    except ImportError as exc:  # SQLAlchemy imports the DBAPI driver when the engine is created
        raise SetupError(_missing_driver_message(url, exc)) from None
    except Exception as exc:
        if type(exc).__name__ == "MissingDriver":  # storage.database.MissingDriver, on backends that define it
            raise SetupError(str(exc)) from None
        raise
    try:
        db.migrate()
    except sa.exc.DBAPIError as exc:
        db.dispose()
        raise SetupError(f"cannot open the database {_display_url(url)}: {_first_line(exc.orig or exc)}") from None
    return db


def _prepare_data_dir(path: str) -> None:
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
    except FileExistsError:
        raise SetupError(f"data directory {path} is a file, not a directory") from None
    except OSError as exc:
        raise SetupError(f"cannot create data directory {path}: {exc.strerror or exc} (choose another with "
                         f"--data-dir)") from None
    try:
        with tempfile.TemporaryFile(dir=path):  # existing is not writable (/proc, a read-only mount)
            pass
    except OSError as exc:
        raise SetupError(f"cannot write in data directory {path}: {exc.strerror or exc} (choose another with "
                         f"--data-dir)") from None


def _missing_driver_message(url: str, exc: ImportError) -> str:
    if url.startswith(("postgresql", "postgres")):
        return (f"the PostgreSQL driver is not installed ({exc}); install it with: "
                f"pip install 'opencleanrooms[postgresql]'")
    return f"the driver for database URL {_display_url(url)} is not installed: {exc}"


def _display_url(url: str) -> str:
    """A database URL fit to print: without its password, or nothing of it when it does not parse."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "(unparsable URL)"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def build_app(settings: Settings) -> AsgiApp:
    db = open_database(settings)
    summaries.backfill(db)
    with db.write(locks=[server_state.LOCK]) as conn:
        token_key = bytes.fromhex(server_state.get_or_create_secret(conn, TOKEN_KEY_NAME))
    tokens = PageTokens(token_key)
    quotas = Quotas.with_overrides(settings.quotas)
    s3 = S3Settings.from_server_settings(settings)
    runner = QueryRunner(db, s3, runner_settings(settings))
    id_mapping_dir = os.path.join(settings.data_dir, "id-mapping-tables")

    def make_context(**fields) -> RequestContext:
        return RequestContext(now=round(time.time(), 3), db=db, tokens=tokens, quotas=quotas, s3=s3,
                              wake_runner=runner.wake, results_dir=settings.resolved_results_dir,
                              id_mapping_dir=id_mapping_dir, **fields)

    pipeline = Pipeline(
        service_model=load_service_model(),
        handlers=registry.load_all(),
        credentials=CredentialCache(db, accept_demo=settings.accepts_demo_credentials),
        regions=settings.regions,
        max_skew_seconds=settings.max_skew_seconds,
        make_context=make_context,
        throttle=Throttle.from_settings(settings.throttle_profile, settings.throttle),
        faults=FaultInjector(settings.faults, settings.fault_seed),
    )
    warm_up()  # the first query is checked as fast as the next

    def shutdown() -> None:
        runner.stop()
        db.dispose()

    return AsgiApp(pipeline, max_body_bytes=settings.max_body_bytes, on_startup=runner.start, on_shutdown=shutdown)


def runner_settings(settings: Settings) -> RunnerSettings:
    return RunnerSettings(
        engine=settings.engine, engine_options=settings.engine_options, workers=settings.query_workers,
        results_dir=settings.resolved_results_dir,
        limits=Limits(timeout_seconds=settings.query_timeout_seconds, memory_limit_mb=settings.query_memory_mb),
        lease_seconds=settings.query_lease_seconds,
        jobs=JobSettings(workers=settings.job_workers, timeout_seconds=settings.job_timeout_seconds,
                         memory_mb=settings.job_memory_mb),
        scratch_dir=settings.resolved_job_scratch_dir)


@functools.cache
def app_from_environment() -> AsgiApp:
    """Factory for uvicorn worker processes: settings arrive in an environment variable set by `serve`."""
    settings = Settings.from_json(os.environ[ENV_SETTINGS])
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    return build_app(settings)
