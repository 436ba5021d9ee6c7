"""A private PostgreSQL server for a test session: the machine's binaries, a temporary data directory, loopback only.

Started by tests/conftest.py when `OPENCLEANROOMS_TEST_BACKEND=postgresql` and no
`OPENCLEANROOMS_TEST_DATABASE_URL` is given; also runnable on its own to get a server for a shell:

    .venv/bin/python -m tests.support.postgres [PORT]   # prints the URL, serves until Ctrl-C or SIGTERM

PostgreSQL refuses to run as root, so under root (CI) initdb and the server run as the `nobody` user. Durability
is off (fsync, synchronous_commit, full_page_writes): the server's data is thrown away at the end anyway.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

BIN_ENV = "OPENCLEANROOMS_TEST_PG_BIN"  # a directory with initdb and pg_ctl, when not the newest installed


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def bin_dir() -> Path:
    if os.environ.get(BIN_ENV):
        return Path(os.environ[BIN_ENV])
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).resolve().parent
    raise RuntimeError("no PostgreSQL server binaries found (apt-get install -y postgresql, or set "
                       f"{BIN_ENV} to the directory holding initdb and pg_ctl)")


class PrivateServer:
    def __init__(self, port: int | None = None) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="ocr-pg-"))
        self.data = self.root / "data"
        self.port = port or free_port()
        self.bin = bin_dir()
        self._user: dict = {}
        if os.geteuid() == 0:
            nobody = pwd.getpwnam("nobody")
            os.chown(self.root, nobody.pw_uid, nobody.pw_gid)
            self._user = {"user": nobody.pw_uid, "group": nobody.pw_gid, "extra_groups": []}
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        result = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=120, cwd=self.root,
                                **self._user)
        if result.returncode != 0:
            raise RuntimeError(f"{args[0]} failed ({result.returncode}): {result.stdout}{result.stderr}")

    def start(self) -> PrivateServer:
        self._run(self.bin / "initdb", "-D", self.data, "-U", "postgres", "--auth=trust", "-E", "UTF8",
                  "--locale=C", "--no-sync")
        options = (f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories={self.root} "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=500 "
                   "-c shared_buffers=128MB")
        self._run(self.bin / "pg_ctl", "-D", self.data, "-l", self.root / "server.log", "-o", options, "-w",
                  "-t", "60", "start")
        return self

    def stop(self) -> None:
        if self.data.exists():
            try:
                self._run(self.bin / "pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop")
            except RuntimeError:
                pass
        shutil.rmtree(self.root, ignore_errors=True)


if __name__ == "__main__":
    import signal
    import sys

    signal.signal(signal.SIGTERM, signal.default_int_handler)  # stop the server on SIGTERM too
    server = PrivateServer(int(sys.argv[1]) if len(sys.argv) > 1 else None).start()
    print(server.url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
