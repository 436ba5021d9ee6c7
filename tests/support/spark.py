"""A local Spark Connect server for the test session, started from the installed pyspark and stopped at the end.

    server = LocalSparkConnect().start()   # local[2], bound to 127.0.0.1 on a free port, small driver memory
    server.remote                           # "sc://127.0.0.1:PORT"
    server.stop()

Spark tests run once per CI run: they are skipped, with the reason, where Java is absent, and in the PostgreSQL
pass of .ci/run (engines do not depend on the database; the SQLite pass has run them). A missing pyspark is not a
reason to skip: the README's test command installs it (the `spark` extra), so its absence fails the tests.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import warnings

from tests.support import backend

CONNECT_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"
START_TIMEOUT = 240.0


def skip_reason() -> str | None:
    """Why Spark tests cannot run here, or None."""
    if backend.is_postgresql():
        return ("Spark engine tests run in the SQLite pass only: engines do not depend on the database backend")
    if not _java():
        return "Java is not installed (the Spark engine tests need a JDK 17 or later: apt-get install openjdk-17-jre-headless)"
    return None


def _java() -> str | None:
    home = os.environ.get("JAVA_HOME")
    if home and os.access(os.path.join(home, "bin", "java"), os.X_OK):
        return os.path.join(home, "bin", "java")
    return shutil.which("java")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LocalSparkConnect:
    """`spark-submit` of the Spark Connect server class in the foreground of its own process group."""

    def __init__(self, *, master: str = "local[2]", driver_memory: str = "768m") -> None:
        self.master, self.driver_memory = master, driver_memory
        self.port = 0
        self.process: subprocess.Popen | None = None
        self.workdir = tempfile.mkdtemp(prefix="ocr-spark-")
        self.log_path = os.path.join(self.workdir, "connect.log")

    @property
    def remote(self) -> str:
        return f"sc://127.0.0.1:{self.port}"

    def start(self) -> LocalSparkConnect:
        try:
            import pyspark
        except ImportError:
            raise RuntimeError("pyspark is not installed: pip install -e '.[test,spark]'") from None
        home = os.path.dirname(pyspark.__file__)
        self.port = _free_port()
        env = dict(os.environ, SPARK_HOME=home, SPARK_LOCAL_IP="127.0.0.1", PYSPARK_PYTHON=shutil.which("python3")
                   or "python3", SPARK_LOG_DIR=self.workdir, SPARK_PID_DIR=self.workdir)
        command = [os.path.join(home, "bin", "spark-submit"), "--class", CONNECT_CLASS, "--name", "ocr-test-connect",
                   "--master", self.master, "--driver-memory", self.driver_memory,
                   "--conf", "spark.connect.grpc.binding.address=127.0.0.1",
                   "--conf", f"spark.connect.grpc.binding.port={self.port}",
                   "--conf", "spark.ui.enabled=false",
                   "--conf", "spark.sql.runSQLOnFiles=false",
                   "--conf", "spark.sql.shuffle.partitions=4",
                   "--conf", f"spark.local.dir={self.workdir}",
                   "--conf", f"spark.sql.warehouse.dir={os.path.join(self.workdir, 'warehouse')}",
                   "--conf", "spark.driver.extraJavaOptions=-XX:+UseSerialGC -Xss4m",
                   "spark-internal"]
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env,
                                            cwd=self.workdir, start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the Spark Connect server exited ({self.process.returncode}):\n{self.log_tail()}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=1):
                self._warm_up()
                return self
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"the Spark Connect server did not start in {START_TIMEOUT:g} s:\n{self.log_tail()}")

    def _warm_up(self) -> None:
        """One small query, so that the first test does not pay the server's cold start against its time limit."""
        with warnings.catch_warnings():  # pyspark warns about pandas releases it has not been tested with
            warnings.simplefilter("ignore", FutureWarning)
            from pyspark.sql.connect.session import SparkSession

        session = SparkSession.builder.remote(self.remote).create()
        try:
            session.sql("SELECT count(*) FROM range(10)").toArrow()
        finally:
            session.stop()

    def log_tail(self, lines: int = 40) -> str:
        with contextlib.suppress(OSError), open(self.log_path, errors="replace") as fh:
            return "".join(fh.readlines()[-lines:])
        return ""

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        shutil.rmtree(self.workdir, ignore_errors=True)
