"""Server settings: defaults, overridden by a TOML config file, overridden by command-line flags."""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from opencleanrooms.storage.database import sqlite_url

ENV_SETTINGS = "OPENCLEANROOMS_SETTINGS_JSON"  # how `serve` hands settings to its worker processes


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
    engine: str = "duckdb"
    query_workers: int = 2
    query_timeout_seconds: float = 1800.0
    query_memory_mb: int = 2048
    query_lease_seconds: float = 30.0
    results_dir: str | None = None

    @property
    def resolved_results_dir(self) -> str:
        return self.results_dir or os.path.join(self.data_dir, "results")

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
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"{path}: unknown setting(s): {', '.join(sorted(unknown))}")
        return cls(**data)


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
