"""Server settings: defaults, overridden by a TOML config file, overridden by command-line flags."""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import json
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from opencleanrooms.storage.database import sqlite_url

ENV_SETTINGS = "OPENCLEANROOMS_SETTINGS_JSON"  # how `serve` hands settings to its worker processes
LOG_LEVELS = ("debug", "info", "warning", "error")
ENGINES = ("duckdb", "spark")


class SetupError(Exception):
    """The server cannot start or a command cannot run because of its environment (files, ports, database); the
    command line prints the message as one line and exits 1, never with a traceback."""


def default_data_dir() -> str:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "opencleanrooms")


@dataclass
class Settings:
    host: str = "127.0.0.1"
    port: int = 8000
    regions: list[str] = field(default_factory=lambda: ["us-east-1"])
    data_dir: str = field(default_factory=default_data_dir)
    database_url: str | None = None  # default: SQLite file in data_dir
    workers: int = 1
    quotas: dict[str, int] = field(default_factory=dict)  # overrides of services.quotas.DEFAULT_QUOTAS
    max_body_bytes: int = 8 * 1024 * 1024
    max_skew_seconds: int = 300
    allow_demo_credentials: bool = False  # accept the documented demo keys on a non-loopback address
    throttle_profile: str = "aws"  # traffic.throttle.PROFILES
    throttle: list[str] = field(default_factory=list)  # extra rules, "OPERATION=RATE[:BURST]"
    faults: list[dict] = field(default_factory=list)  # traffic.faults rules; off when empty
    fault_seed: int = 0
    # S3-compatible endpoint for catalog tables at s3:// locations: endpoint_url, region, access_key_id,
    # cache_dir. Prefer the OPENCLEANROOMS_S3_SECRET_ACCESS_KEY environment variable for the secret.
    s3: dict[str, str] = field(default_factory=dict)
    log_level: str = "info"
    # Protected queries: the engine, how many run at once in each server process, their limits, and where results
    # go when there is no S3 endpoint (default: <data_dir>/results).
    engine: str = "duckdb"  # "duckdb" (embedded) or "spark" (a Spark Connect server at spark_remote)
    spark_remote: str | None = None  # sc://HOST:PORT
    query_workers: int = 2
    query_timeout_seconds: float = 1800.0
    query_memory_mb: int = 2048
    query_lease_seconds: float = 30.0
    results_dir: str | None = None
    # Protected (PySpark) jobs: how many run at once in each server or worker process (0: none here), each one's
    # time limit and Spark driver memory, and where their scratch directories go (default: <data_dir>/jobs).
    job_workers: int = 1
    job_timeout_seconds: float = 1800.0
    job_memory_mb: int = 1024
    job_scratch_dir: str | None = None

    @property
    def resolved_results_dir(self) -> str:
        return self.results_dir or os.path.join(self.data_dir, "results")

    @property
    def resolved_job_scratch_dir(self) -> str:
        return self.job_scratch_dir or os.path.join(self.data_dir, "jobs")

    @property
    def engine_options(self) -> dict:
        """What `engines.open_engine` needs besides the engine's name."""
        return {"remote": self.spark_remote} if self.engine == "spark" else {}

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or sqlite_url(self.data_dir)

    @property
    def accepts_demo_credentials(self) -> bool:
        return self.allow_demo_credentials or is_loopback(self.host)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Settings:
        return cls(**json.loads(text))

    @classmethod
    def from_toml(cls, path: str | Path) -> Settings:
        """Settings from a config file; a file that cannot be read is a SetupError, bad contents a ValueError,
        both naming the file."""
        try:
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"config file {path} is not valid TOML: {exc}") from None
        except IsADirectoryError:
            raise SetupError(f"config file {path} is a directory") from None
        except OSError as exc:
            raise SetupError(f"cannot read config file {path}: {exc.strerror or exc}") from None
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"{path}: unknown setting(s): {', '.join(sorted(unknown))}")
        settings = cls(**data)
        try:
            settings.validate()
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None
        return settings

    def validate(self) -> Settings:
        """Check every setting's type and range, so that a config file's `port = "abc"` is an error here rather
        than a URL with "abc" in it or a traceback in a worker process. Returns self."""
        _check(isinstance(self.host, str) and self.host != "", "host must be a non-empty string", self.host)
        _check(_is_int(self.port) and 0 <= self.port <= 65535, "port must be an integer from 0 to 65535", self.port)
        _check(isinstance(self.regions, list) and self.regions and all(isinstance(r, str) for r in self.regions),
               "regions must be a non-empty list of region names", self.regions)
        for region in self.regions:
            check_region(region)
        _check(isinstance(self.data_dir, str) and self.data_dir != "", "data_dir must be a path", self.data_dir)
        _check(self.database_url is None or (isinstance(self.database_url, str) and self.database_url),
               "database_url must be a SQLAlchemy URL string", self.database_url)
        _check(_is_int(self.workers) and self.workers >= 1, "workers must be an integer of at least 1",
               self.workers)
        _check(isinstance(self.quotas, dict) and all(isinstance(k, str) and _is_int(v) for k, v in
                                                     self.quotas.items()),
               "quotas must be a table of integers, e.g. quotas = { members = 10 }", self.quotas)
        _check(_is_int(self.max_body_bytes) and self.max_body_bytes > 0, "max_body_bytes must be a positive "
               "integer", self.max_body_bytes)
        _check(_is_int(self.max_skew_seconds) and self.max_skew_seconds > 0, "max_skew_seconds must be a "
               "positive integer", self.max_skew_seconds)
        _check(isinstance(self.allow_demo_credentials, bool), "allow_demo_credentials must be true or false",
               self.allow_demo_credentials)
        _check(isinstance(self.throttle_profile, str), "throttle_profile must be a string", self.throttle_profile)
        _check(isinstance(self.throttle, list) and all(isinstance(t, str) for t in self.throttle),
               'throttle must be a list of strings, e.g. ["ListCollaborations=5:10"]', self.throttle)
        _check(isinstance(self.faults, list) and all(isinstance(f, dict) for f in self.faults),
               "faults must be a list of tables ([[faults]])", self.faults)
        _check(_is_int(self.fault_seed), "fault_seed must be an integer", self.fault_seed)
        _check(isinstance(self.s3, dict) and all(isinstance(v, str) for v in self.s3.values()),
               "s3 must be a table of strings ([s3])", self.s3)
        _check(self.log_level in LOG_LEVELS, f"log_level must be one of {', '.join(LOG_LEVELS)}", self.log_level)
        _check(self.engine in ENGINES, f"engine must be one of {', '.join(ENGINES)}", self.engine)
        if self.engine == "spark" or self.spark_remote is not None:
            from opencleanrooms.engines.spark import check_remote

            if self.engine == "spark" and self.spark_remote is None:
                raise ValueError("engine spark needs spark_remote (--spark-remote sc://HOST:PORT), the address of a "
                                 "Spark Connect server")
            check_remote(self.spark_remote)
        _check(_is_int(self.query_workers) and self.query_workers >= 0, "query_workers must be a non-negative "
               "integer", self.query_workers)
        for name in ("query_timeout_seconds", "query_lease_seconds"):
            value = getattr(self, name)
            _check(isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0,
                   f"{name} must be a positive number", value)
        _check(_is_int(self.query_memory_mb) and self.query_memory_mb > 0, "query_memory_mb must be a positive "
               "integer", self.query_memory_mb)
        _check(self.results_dir is None or (isinstance(self.results_dir, str) and self.results_dir),
               "results_dir must be a path", self.results_dir)
        _check(_is_int(self.job_workers) and self.job_workers >= 0, "job_workers must be a non-negative integer",
               self.job_workers)
        _check(isinstance(self.job_timeout_seconds, (int, float)) and not isinstance(self.job_timeout_seconds, bool)
               and self.job_timeout_seconds > 0, "job_timeout_seconds must be a positive number",
               self.job_timeout_seconds)
        _check(_is_int(self.job_memory_mb) and self.job_memory_mb >= 256, "job_memory_mb must be an integer of at "
               "least 256", self.job_memory_mb)
        _check(self.job_scratch_dir is None or (isinstance(self.job_scratch_dir, str) and self.job_scratch_dir),
               "job_scratch_dir must be a path", self.job_scratch_dir)
        return self


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check(ok: bool, message: str, value) -> None:
    if not ok:
        raise ValueError(f"{message}, not {value!r}")


# Regions: AWS Clean Rooms runs in a few regions, but a self-hosted server may serve any region a client can be
# configured for. Accepted: every region of botocore's endpoint data in the `aws` partition (ARNs are `arn:aws:`).
REGION_SHAPE = "like us-east-1 or eu-west-2"


def known_regions() -> tuple[list[str], list[str]]:
    """(regions where AWS runs Clean Rooms, every region of the aws partition), from botocore's endpoint data."""
    return _known_regions()


def check_region(region: str) -> None:
    """Refuse a region that botocore does not know, with a message listing how regions look and which exist."""
    cleanrooms, partition = known_regions()
    if region in partition:
        return
    raise ValueError(f"unknown region {region!r}: regions look {REGION_SHAPE}; AWS Clean Rooms regions are "
                     f"{', '.join(cleanrooms)}; the other AWS regions are accepted too: "
                     f"{', '.join(r for r in partition if r not in cleanrooms)}")


def _load_known_regions() -> tuple[list[str], list[str]]:
    import botocore.session

    session = botocore.session.get_session()
    cleanrooms = sorted(session.get_available_regions("cleanrooms"))
    partition = next(p for p in session.get_data("endpoints")["partitions"] if p["partition"] == "aws")
    return cleanrooms, sorted(set(partition["regions"]) | set(cleanrooms))


_known_regions = functools.cache(_load_known_regions)
