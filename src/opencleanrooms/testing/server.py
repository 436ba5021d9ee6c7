"""A real OpenCleanRooms server in a subprocess, and accounts with boto3 clients for it (see docs/testing.md)."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

_BANNER = re.compile(r"serving the Clean Rooms API at (http://\S+)")


class CleanRoomsServer:
    """`opencleanrooms serve` on a port the kernel picks, with its database in `data_dir`.

    `args` are extra `serve` flags (regions, quotas, faults, --database-url...). Accounts and catalog tables are
    written straight into the server's database, as the `opencleanrooms credentials` and `catalog` commands do;
    the running server sees them at once.
    """

    def __init__(self, data_dir: str | os.PathLike | None = None, *, args: list[str] | tuple[str, ...] = (),
                 start_timeout: float = 60.0) -> None:
        self._own_dir = data_dir is None  # a directory made here is removed by stop()
        self.data_dir = Path(data_dir) if data_dir is not None else Path(tempfile.mkdtemp(prefix="opencleanrooms-"))
        self.args = list(args)
        self.start_timeout = start_timeout
        self.log_path = self.data_dir / "server.log"
        self.endpoint: str | None = None
        self._process: subprocess.Popen | None = None
        self._db = None
        from opencleanrooms import cli

        # The same settings the server parses from the same flags: where its database is, which regions it serves.
        self.settings = cli._settings(cli._parser().parse_args(
            ["serve", "--data-dir", str(self.data_dir), *self.args]))

    @property
    def region(self) -> str:
        """The first region served (us-east-1 unless `--region` says otherwise); clients use it by default."""
        return self.settings.regions[0]

    @property
    def regions(self) -> list[str]:
        return list(self.settings.regions)

    def start(self) -> CleanRoomsServer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "opencleanrooms", "serve", "--data-dir", str(self.data_dir),
                 "--host", "127.0.0.1", "--port", "0", *self.args],
                stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"the OpenCleanRooms server exited with {self._process.returncode}:\n"
                                   f"{self.log_text()[-4000:]}")
            if self.endpoint is None and (match := _BANNER.search(self.log_text())):
                self.endpoint = match[1]
            if self.endpoint is not None and self._answers():
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"the OpenCleanRooms server did not start within {self.start_timeout}s:\n"
                           f"{self.log_text()[-4000:]}")

    def _answers(self) -> bool:
        try:
            urllib.request.urlopen(self.endpoint + "/collaborations", timeout=2)
        except urllib.error.HTTPError:  # an unsigned request gets 403: the server is up
            return True
        except OSError:
            return False
        return True

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None
        if self._db is not None:
            self._db.dispose()
            self._db = None
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> CleanRoomsServer:
        return self.start()

    def __exit__(self, *_exc) -> None:
        self.stop()

    def log_text(self) -> str:
        """The server's output so far: its banner, and one line per request (with the reason of a refusal)."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    @property
    def db(self):
        if self._db is None:
            from opencleanrooms.app import open_database

            self._db = open_database(self.settings)
        return self._db

    def new_account(self, name: str | None = None, account_id: str | None = None) -> Account:
        """A new account with its own access key (a random 12-digit id unless given)."""
        from opencleanrooms.storage import credentials

        account = Account(
            server=self, name=name or "account",
            account_id=account_id or str(secrets.randbelow(9 * 10**11) + 10**11),
            access_key_id="AKIATEST" + secrets.token_hex(6).upper(),
            secret_access_key=secrets.token_urlsafe(30))
        with self.db.write() as conn:
            credentials.put(conn, account.access_key_id, account.secret_access_key, account.account_id)
        return account

    def add_table(self, account_id: str, database: str, table: str, path: str | os.PathLike, *,
                  region: str | None = None, format: str | None = None,  # noqa: A002
                  header: bool | None = None, delimiter: str | None = None) -> list:
        """Put a Parquet or CSV file (or a directory or glob of them) in the account's data catalog as Glue
        table `database.table`; returns its columns as Clean Rooms will see them. Raises TableUnreadable when the
        data cannot be read (missing, empty, header-only CSV...)."""
        from opencleanrooms.catalog import S3Settings, reader
        from opencleanrooms.catalog.commands import add_table

        columns = []
        s3 = S3Settings.from_server_settings(self.settings)
        add_table(self.db, account_id=account_id, database=database, table=table, location=os.fspath(path),
                  region=region, format=format, header=header, delimiter=delimiter,
                  check=lambda source: columns.extend(reader.read_schema(source, s3, cache=None)))
        return columns

    def client(self, account: Account, *, region: str | None = None, **config):
        """A boto3 Clean Rooms client signed with the account's key; `config` goes to botocore's Config."""
        import boto3
        import botocore.config

        return boto3.client(
            "cleanrooms", endpoint_url=self.endpoint, region_name=region or self.region,
            aws_access_key_id=account.access_key_id, aws_secret_access_key=account.secret_access_key,
            config=botocore.config.Config(**config) if config else None)


@dataclass(eq=False)
class Account:
    server: CleanRoomsServer = field(repr=False)
    name: str
    account_id: str
    access_key_id: str
    secret_access_key: str = field(repr=False)

    @property
    def id(self) -> str:
        return self.account_id

    @cached_property
    def client(self):
        """This account's boto3 Clean Rooms client, in the server's first region."""
        return self.server.client(self)

    def client_in(self, region: str, **config):
        return self.server.client(self, region=region, **config)

    def add_table(self, database: str, table: str, path: str | os.PathLike, **options) -> list:
        """Put a file in this account's data catalog (see CleanRoomsServer.add_table)."""
        return self.server.add_table(self.account_id, database, table, path, **options)

    @property
    def env(self) -> dict[str, str]:
        """Environment variables under which unmodified code (`boto3.client("cleanrooms")`, the AWS CLI) calls the
        server as this account."""
        return {"AWS_ACCESS_KEY_ID": self.access_key_id, "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
                "AWS_DEFAULT_REGION": self.server.region, "AWS_ENDPOINT_URL_CLEANROOMS": self.server.endpoint}


class Accounts:
    """Accounts by name, made on first use: `accounts.alice`, `accounts["bob"]`; the same name gives the same
    account for the life of this object (one test, with the `cleanrooms_accounts` fixture)."""

    def __init__(self, server: CleanRoomsServer) -> None:
        self._server = server
        self._by_name: dict[str, Account] = {}

    def __getitem__(self, name: str) -> Account:
        if name not in self._by_name:
            self._by_name[name] = self._server.new_account(name)
        return self._by_name[name]

    def __getattr__(self, name: str) -> Account:
        if name.startswith("_"):
            raise AttributeError(name)
        return self[name]

    def __iter__(self):
        return iter(self._by_name.values())
