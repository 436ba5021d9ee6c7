"""Builds the server from its settings: database, credentials, model, services, pipeline, ASGI app."""

from __future__ import annotations

import functools
import logging
import os
import time

from opencleanrooms.auth.credentials import CredentialCache
from opencleanrooms.catalog import S3Settings
from opencleanrooms.config import ENV_SETTINGS, Settings
from opencleanrooms.http.asgi import AsgiApp
from opencleanrooms.engines import Limits
from opencleanrooms.pipeline import Pipeline
from opencleanrooms.policy import warm_up
from opencleanrooms.protocol.model import load_service_model
from opencleanrooms.runner import QueryRunner, RunnerSettings
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
    if settings.database_url is None:
        os.makedirs(settings.data_dir, mode=0o700, exist_ok=True)
    db = Database(settings.resolved_database_url)
    db.migrate()
    return db


def build_app(settings: Settings) -> AsgiApp:
    db = open_database(settings)
    summaries.backfill(db)
    with db.write(locks=[server_state.LOCK]) as conn:
        token_key = bytes.fromhex(server_state.get_or_create_secret(conn, TOKEN_KEY_NAME))
    tokens = PageTokens(token_key)
    quotas = Quotas.with_overrides(settings.quotas)
    s3 = S3Settings.from_server_settings(settings)
    runner = QueryRunner(db, s3, runner_settings(settings))

    def make_context(**fields) -> RequestContext:
        return RequestContext(now=round(time.time(), 3), db=db, tokens=tokens, quotas=quotas, s3=s3,
                              wake_runner=runner.wake, **fields)

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
        engine=settings.engine, workers=settings.query_workers, results_dir=settings.resolved_results_dir,
        limits=Limits(timeout_seconds=settings.query_timeout_seconds, memory_limit_mb=settings.query_memory_mb),
        lease_seconds=settings.query_lease_seconds)


@functools.cache
def app_from_environment() -> AsgiApp:
    """Factory for uvicorn worker processes: settings arrive in an environment variable set by `serve`."""
    settings = Settings.from_json(os.environ[ENV_SETTINGS])
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    return build_app(settings)
