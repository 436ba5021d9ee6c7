"""moto's standalone server as a real S3-compatible endpoint, in its own process on a free local port.

    with MotoS3(log_dir) as moto:                  # started; stopped (and its log closed) on leaving
        s3 = moto.client()                         # a boto3 S3 client for it
        config = moto.server_config(log_dir / "config.toml")   # an `[s3]` section for our server's --config

One starter for every test that needs S3 (catalog, results, templates, jobs, log exports): moto gets an environment
without the caller's AWS_* variables, and a start that fails says why (the tail of moto's log).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import boto3

from tests.support.server import free_port

S3_KEY, S3_SECRET = "motos3testkey", "moto-s3-test-secret-do-not-print"
START_TIMEOUT = 30.0


class MotoS3:
    """One moto server; `endpoint` is its URL once started. Any key pair is accepted by moto."""

    def __init__(self, log_dir: str | os.PathLike, *, key: str = S3_KEY, secret: str = S3_SECRET) -> None:
        self.log_path = Path(log_dir) / "moto.log"
        self.key, self.secret = key, secret
        self.endpoint = ""
        self._process: subprocess.Popen | None = None

    def start(self) -> MotoS3:
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        with open(self.log_path, "wb") as log:  # the child keeps its own handle
            self._process = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                stdout=log, stderr=subprocess.STDOUT, env=env)
        self.endpoint = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self._process.poll() is not None:
                raise RuntimeError(f"moto server exited: {self._log_tail()}")
            try:
                urllib.request.urlopen(self.endpoint + "/", timeout=1)
                return self
            except urllib.error.HTTPError:  # it answers: it is up
                return self
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"moto server did not start: {self._log_tail()}") from None
                time.sleep(0.1)

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def client(self):
        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1", aws_access_key_id=self.key,
                            aws_secret_access_key=self.secret)

    def server_config(self, path: str | os.PathLike) -> Path:
        """Write a server config file whose `[s3]` section points at this moto; returns its path."""
        path = Path(path)
        path.write_text(f'[s3]\nendpoint_url = "{self.endpoint}"\nregion = "us-east-1"\n'
                        f'access_key_id = "{self.key}"\nsecret_access_key = "{self.secret}"\n')
        return path

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-2000:]
        except OSError:
            return "(no log)"

    def __enter__(self) -> MotoS3:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
