"""The `opencleanrooms` command: serve, manage credentials, migrate, check the model."""

from __future__ import annotations

import argparse
import dataclasses
import errno
import os
import secrets
import shlex
import shutil
import socket
import string
import sys

from opencleanrooms import __version__
from opencleanrooms.config import ENV_SETTINGS, LOG_LEVELS, SetupError, Settings
from opencleanrooms.services.quotas import DEFAULT_QUOTAS
from opencleanrooms.traffic.faults import parse_rule as parse_fault


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return args.func(args) or 0
    except SetupError as exc:  # the environment: files, ports, the database; one line, never a traceback
        print(f"opencleanrooms: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:  # what the user asked for: flags, config values
        print(f"opencleanrooms: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C before the server took over its own signals (during migrations, say)
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="opencleanrooms", description=__doc__)
    parser.add_argument("--version", action="version", version=f"opencleanrooms {__version__}")
    commands = parser.add_subparsers(metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the Clean Rooms API server")
    _storage_flags(serve)
    serve.add_argument("--host", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default 8000)")
    serve.add_argument("--region", action="append", dest="regions", metavar="REGION",
                       help="region to serve; repeat for several (default us-east-1)")
    serve.add_argument("--workers", type=int, help="server processes (default 1)")
    serve.add_argument("--quota", action="append", default=[], metavar="NAME=VALUE",
                       help=f"override a resource quota; names: {', '.join(DEFAULT_QUOTAS)}")
    serve.add_argument("--max-body-bytes", type=int, help="largest request body accepted (default 8 MiB)")
    serve.add_argument("--allow-demo-credentials", action="store_true", default=None,
                       help="accept the documented demo keys even on a non-loopback address")
    serve.add_argument("--throttle-profile", help="request-rate limits to start from: aws (AWS's published "
                       "per-API rates, the default) or none")
    serve.add_argument("--throttle", action="append", default=[], metavar="OPERATION=RATE[:BURST]",
                       help="limit an operation (or * for all) per account, in requests per second")
    serve.add_argument("--fault", action="append", default=[], metavar="OPERATION=ERROR@WHEN",
                       help="inject a fault: ERROR is InternalServerException, ThrottlingException or crash; "
                       "WHEN is calls:1,2 | every:N | rate:P")
    serve.add_argument("--fault-seed", type=int, help="seed for rate-based faults (default 0)")
    serve.add_argument("--log-level", choices=LOG_LEVELS)
    _runner_flags(serve, "per server process; 0 leaves them to `opencleanrooms worker` processes")
    serve.set_defaults(func=_serve)

    worker = commands.add_parser("worker", help="run queued protected queries and jobs from the shared database "
                                 "(no HTTP)")
    _storage_flags(worker)
    _runner_flags(worker, "in this worker")
    worker.add_argument("--log-level", choices=LOG_LEVELS)
    worker.set_defaults(func=_worker)

    creds = commands.add_parser("credentials", help="manage access keys")
    creds_commands = creds.add_subparsers(metavar="ACTION")
    create = creds_commands.add_parser("create", help="create (or replace) an access key for an account")
    _storage_flags(create)
    create.add_argument("--account-id", required=True, help="12-digit account id")
    create.add_argument("--access-key-id", help="key id to use (default: generated)")
    create.add_argument("--secret-access-key", help="secret to use (default: generated)")
    create.set_defaults(func=_credentials_create)
    listing = creds_commands.add_parser("list", help="list access keys (secrets are not shown)")
    _storage_flags(listing)
    listing.set_defaults(func=_credentials_list)
    delete = creds_commands.add_parser("delete", help="delete an access key")
    _storage_flags(delete)
    delete.add_argument("--access-key-id", required=True)
    delete.set_defaults(func=_credentials_delete)

    migrate = commands.add_parser("migrate", help="create or upgrade the database schema")
    _storage_flags(migrate)
    migrate.set_defaults(func=_migrate)

    check = commands.add_parser("check-model", help="show the service model in use and what is implemented")
    check.set_defaults(func=_check_model)

    from opencleanrooms.catalog.commands import register_cli as register_catalog_cli

    register_catalog_cli(commands, storage_flags=_storage_flags, settings_from_args=_settings)
    from opencleanrooms.query_commands import register_cli as register_query_cli

    register_query_cli(commands, storage_flags=_storage_flags, settings_from_args=_settings)
    from opencleanrooms.budget_commands import register_cli as register_budget_cli

    register_budget_cli(commands, storage_flags=_storage_flags, settings_from_args=_settings)
    return parser


def _runner_flags(parser: argparse.ArgumentParser, where: str) -> None:
    parser.add_argument("--engine", choices=("duckdb", "spark"), help="what runs protected queries: the embedded "
                        "DuckDB (default) or a Spark cluster through Spark Connect (needs --spark-remote)")
    parser.add_argument("--spark-remote", metavar="sc://HOST:PORT", help="the Spark Connect server of --engine "
                        "spark")
    parser.add_argument("--query-workers", type=int, help=f"protected queries run at once {where} (default 2)")
    parser.add_argument("--query-timeout", type=float, dest="query_timeout_seconds", metavar="SECONDS",
                        help="a protected query running longer ends TIMED_OUT (default 1800)")
    parser.add_argument("--query-memory-mb", type=int, help="working memory of one protected query (default 2048)")
    parser.add_argument("--job-workers", type=int, help=f"protected (PySpark) jobs run at once {where} (default 1)")
    parser.add_argument("--job-timeout", type=float, dest="job_timeout_seconds", metavar="SECONDS",
                        help="a protected job running longer is stopped and ends FAILED (default 1800)")
    parser.add_argument("--job-memory-mb", type=int, help="Spark driver memory of one protected job (default 1024)")
    parser.add_argument("--results-dir", help="where results go when there is no S3 endpoint "
                        "(default: DATA_DIR/results)")


def _storage_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="TOML file of settings (flags override it)")
    parser.add_argument("--data-dir", help="directory for the embedded SQLite database")
    parser.add_argument("--database-url", help="SQLAlchemy URL of the database (overrides --data-dir)")


def _settings(args: argparse.Namespace) -> Settings:
    settings = Settings.from_toml(args.config) if getattr(args, "config", None) else Settings()
    overrides = {}
    for name in ("host", "port", "regions", "data_dir", "database_url", "workers", "max_body_bytes",
                 "allow_demo_credentials", "log_level", "throttle_profile", "fault_seed", "query_workers",
                 "query_timeout_seconds", "query_memory_mb", "results_dir", "job_workers", "job_timeout_seconds",
                 "job_memory_mb", "engine", "spark_remote"):
        value = getattr(args, name, None)
        if value is not None:
            overrides[name] = value
    quotas = dict(settings.quotas)
    for item in getattr(args, "quota", []) or []:
        name, sep, value = item.partition("=")
        if not sep or not value.isdigit():
            raise ValueError(f"--quota takes NAME=VALUE, got {item!r}")
        quotas[name] = int(value)
    throttle = settings.throttle + list(getattr(args, "throttle", []) or [])
    faults = settings.faults + [parse_fault(spec) for spec in getattr(args, "fault", []) or []]
    return dataclasses.replace(settings, quotas=quotas, throttle=throttle, faults=faults, **overrides).validate()


def _serve(args: argparse.Namespace) -> int:
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    from opencleanrooms.app import open_database
    from opencleanrooms.auth.demo import ensure_demo_credentials
    from opencleanrooms.services.quotas import Quotas
    from opencleanrooms.traffic.faults import FaultInjector
    from opencleanrooms.traffic.throttle import Throttle

    settings = _settings(args)
    Quotas.with_overrides(settings.quotas)  # reject bad settings before starting any worker
    Throttle.from_settings(settings.throttle_profile, settings.throttle)
    faults = FaultInjector(settings.faults, settings.fault_seed)
    _check_engine(settings)
    sock = _listen(settings.host, settings.port)  # port in use: one line, before anything is printed or created
    try:
        db = open_database(settings)
        try:
            created = ensure_demo_credentials(db)
        finally:
            db.dispose()
        # --port 0 asks the kernel for a free port: the banner shows the one actually bound.
        settings = dataclasses.replace(settings, port=sock.getsockname()[1])
        _print_banner(settings, created=created, faults=bool(faults))
        os.environ[ENV_SETTINGS] = settings.to_json()
        config = uvicorn.Config(
            "opencleanrooms.app:app_from_environment", factory=True, host=settings.host, port=settings.port,
            workers=settings.workers, log_level=settings.log_level, access_log=False, http="httptools",
            loop=_event_loop(), lifespan="on", server_header=False, date_header=True,
        )
        server = uvicorn.Server(config)
        try:
            if settings.workers > 1:
                try:  # older uvicorn releases take the workers' target; newer ones build it themselves
                    supervisor = Multiprocess(config, target=server.run, sockets=[sock])
                except TypeError:
                    supervisor = Multiprocess(config, sockets=[sock])
                supervisor.run()
            else:
                server.run(sockets=[sock])
        except KeyboardInterrupt:
            pass
    finally:
        sock.close()
    if settings.workers == 1 and not server.started:
        print("opencleanrooms: the server did not start (see the log above)", file=sys.stderr)
        return 1
    return 0


def _worker(args: argparse.Namespace) -> int:
    """Run queued queries and jobs until SIGTERM or Ctrl-C; what runs is recorded interrupted (retryable)."""
    import logging
    import signal
    import threading

    from opencleanrooms.app import open_database, runner_settings
    from opencleanrooms.catalog import S3Settings
    from opencleanrooms.runner import QueryRunner

    settings = _settings(args)
    _check_engine(settings)
    if settings.query_workers == 0 and settings.job_workers == 0:
        raise ValueError("a worker with --query-workers 0 and --job-workers 0 would run nothing")
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    db = open_database(settings)
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    runner = QueryRunner(db, S3Settings.from_server_settings(settings), runner_settings(settings))
    try:
        runner.start()
        print(f"OpenCleanRooms worker {runner.name}: {settings.query_workers} protected queries and "
              f"{settings.job_workers} protected jobs at once, from {_safe_url(settings.resolved_database_url)}",
              flush=True)
        while not stop.wait(1.0):
            pass
    finally:
        runner.stop()
        db.dispose()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def _check_engine(settings: Settings) -> None:
    """A missing engine package is one setup line before anything starts, never a traceback in a worker."""
    from opencleanrooms.engines import EngineUnavailable, open_engine

    try:
        open_engine(settings.engine, **settings.engine_options).close()
    except EngineUnavailable as exc:
        raise SetupError(str(exc)) from None


def _listen(host: str, port: int) -> socket.socket:
    """Bind and listen before the banner is printed: a client that copies the banner's command at once is queued
    by the kernel until a worker accepts, never refused."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise SetupError(f"cannot listen on {host}:{port}: the address is already in use (another server "
                             f"running? choose another port with --port)") from None
        if isinstance(exc, socket.gaierror):
            raise SetupError(f"cannot listen on {host}:{port}: unknown host {host!r}") from None
        raise SetupError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


def _print_banner(settings: Settings, *, created: bool, faults: bool) -> None:
    from opencleanrooms.auth.demo import DEMO_ACCOUNTS

    endpoint = endpoint_for(settings.host, settings.port)
    region = settings.regions[0]
    lines = [f"OpenCleanRooms serving the Clean Rooms API at {endpoint}",
             f"  regions: {', '.join(settings.regions)}; database: {_safe_url(settings.resolved_database_url)}"]
    if settings.accepts_demo_credentials:
        lines.append("  demo credentials" + (" (created now)" if created else "") + ":")
        lines += [f"    account {account}: AWS_ACCESS_KEY_ID={key} AWS_SECRET_ACCESS_KEY={secret}"
                  for account, key, secret in DEMO_ACCOUNTS]
        _account, key, secret = DEMO_ACCOUNTS[0]
        keys = f"AWS_ACCESS_KEY_ID={key} AWS_SECRET_ACCESS_KEY={secret}"
    else:
        lines.append("  demo credentials are refused on a non-loopback address; create keys with "
                     "`opencleanrooms credentials create --account-id 123456789012`")
        keys = "AWS_ACCESS_KEY_ID=<key id> AWS_SECRET_ACCESS_KEY=<secret>"
    if faults:
        lines.append(f"  fault injection is ON: {len(settings.faults)} rule(s)")
    lines.append(f"  try: {keys} {try_command(endpoint, region)}")
    print("\n".join(lines), flush=True)


def endpoint_for(host: str, port: int) -> str:
    if host in ("127.0.0.1", "::1", "localhost"):
        return f"http://localhost:{port}"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def try_command(endpoint: str, region: str) -> str:
    """A first call to paste into a shell: the AWS CLI when there is one on PATH, else this venv's Python with
    boto3 (a dependency of the server, so always there)."""
    if shutil.which("aws"):
        return f"aws cleanrooms list-collaborations --endpoint-url {endpoint} --region {region}"
    code = (f"import boto3; print(boto3.client('cleanrooms', endpoint_url='{endpoint}', region_name='{region}')"
            f".list_collaborations()['collaborationList'])")
    return f"{shlex.quote(sys.executable)} -c {shlex.quote(code)}"


def _credentials_create(args: argparse.Namespace) -> int:
    from opencleanrooms.app import open_database
    from opencleanrooms.storage import credentials as store

    account = args.account_id
    if len(account) != 12 or not account.isdigit():
        raise ValueError("--account-id must be 12 digits")
    key = args.access_key_id or "AKIA" + "".join(secrets.choice(string.ascii_uppercase + string.digits)
                                                for _ in range(16))
    secret = args.secret_access_key or secrets.token_urlsafe(30)[:40]
    if not (1 <= len(key) <= 128 and key.isalnum()):
        raise ValueError("--access-key-id must be 1-128 letters and digits")
    db = open_database(_settings(args))
    with db.write() as conn:
        store.put(conn, key, secret, account)
    print(f"account {account}: AWS_ACCESS_KEY_ID={key} AWS_SECRET_ACCESS_KEY={secret}")
    return 0


def _credentials_list(args: argparse.Namespace) -> int:
    from opencleanrooms.app import open_database
    from opencleanrooms.storage import credentials as store

    db = open_database(_settings(args))
    with db.read() as conn:
        for row in store.all_keys(conn):
            print(f"{row['account_id']}  {row['access_key_id']}{'  (demo)' if row['is_demo'] else ''}")
    return 0


def _credentials_delete(args: argparse.Namespace) -> int:
    from opencleanrooms.app import open_database
    from opencleanrooms.storage import credentials as store

    db = open_database(_settings(args))
    with db.write() as conn:
        if not store.delete(conn, args.access_key_id):
            print(f"no such access key: {args.access_key_id}", file=sys.stderr)
            return 1
    return 0


def _migrate(args: argparse.Namespace) -> int:
    from opencleanrooms.app import open_database

    settings = _settings(args)
    version = open_database(settings).migrate()
    print(f"{_safe_url(settings.resolved_database_url)}: schema version {version}")
    return 0


def _check_model(_args: argparse.Namespace) -> int:
    from opencleanrooms.protocol.model import botocore_version, load_service_model
    from opencleanrooms.services.registry import load_all

    model = load_service_model()
    handlers = load_all()
    print(f"botocore {botocore_version()}: {model.metadata['uid']}, {len(model.operation_names)} operations")
    print(f"implemented ({len(handlers)}): {', '.join(sorted(handlers))}")
    missing = sorted(set(handlers) - set(model.operation_names))
    if missing:
        print(f"implemented but absent from the model: {', '.join(missing)}")
        return 1
    return 0


def _event_loop() -> str:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "asyncio"
    return "uvloop"


def _safe_url(url: str) -> str:
    """A database URL without its password, fit to print."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
