"""Runs the real server as a separate process and hands out boto3 clients of distinct accounts.

Accounts get access keys written with the project's own credential store (what `opencleanrooms credentials
create` does) before or while the server runs; the server reads keys from the database on each unknown key.
"""

from __future__ import annotations

import itertools
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import boto3
import botocore.config

from opencleanrooms.storage import credentials as credential_store
from opencleanrooms.storage.database import Database
from tests.support import backend, conformance

REGION = "us-east-1"
_account_numbers = itertools.count(100000000000 + (os.getpid() % 1000) * 1000000)


@dataclass(frozen=True)
class Account:
    account_id: str
    access_key_id: str
    secret_access_key: str


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    def __init__(self, data_dir: Path, *extra_args: str, port: int | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.port = port or free_port()
        self.extra_args = list(extra_args)
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.log_path = self.data_dir / "server.log"
        self.process: subprocess.Popen | None = None
        self._db: Database | None = None
        # The data directory's database (SQLite in it, or a fresh PostgreSQL database: tests/support/backend.py).
        self.storage_args = backend.storage_args(self.data_dir)
        self.database_url = backend.database_url(self.data_dir)

    def start(self, timeout: float = 30.0) -> ServerProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "opencleanrooms", "serve", *self.storage_args,
             "--port", str(self.port), "--host", "127.0.0.1", *self.extra_args],
            stdout=log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}: {self.log_tail()}")
            try:
                urllib.request.urlopen(self.endpoint + "/collaborations", timeout=1)
                return self
            except urllib.error.HTTPError:  # any HTTP answer (an unsigned request gets 403) means it is up
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"server did not answer within {timeout}s: {self.log_tail()}")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.process is None:
            return 0
        self.process.send_signal(sig)
        try:
            code = self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        self.process = None
        return code

    def log_tail(self, n: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-n:] if self.log_path.exists() else ""

    @property
    def db(self) -> Database:
        if self._db is None:
            self._db = Database(self.database_url)
            self._db.migrate()
        return self._db

    def new_account(self) -> Account:
        account = Account(str(next(_account_numbers)), "AKIATEST" + secrets.token_hex(6).upper(),
                          secrets.token_urlsafe(30))
        with self.db.write() as conn:
            credential_store.put(conn, account.access_key_id, account.secret_access_key, account.account_id)
        return account

    def client(self, account: Account, *, region: str = REGION, check: bool = True, **config):
        client = boto3.client(
            "cleanrooms", endpoint_url=self.endpoint, region_name=region,
            aws_access_key_id=account.access_key_id, aws_secret_access_key=account.secret_access_key,
            config=botocore.config.Config(**{"retries": {"mode": "standard", "total_max_attempts": 1}, **config}),
        )
        return conformance.install(client) if check else client
