"""Server processes under test, and what /proc says about them (CPU time, resident memory)."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from bench import signing
from bench.signing import Endpoint

REPO = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")

# The account both servers are seeded with (moto serves every unknown key as this account).
ACCOUNT_ID = "123456789012"
ACCESS_KEY_ID = "AKIABENCH00000000001"
SECRET_ACCESS_KEY = "bench-secret-0000000000000000000000000001"
MOTO_ACCOUNT_ID = "123456789012"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- /proc --------------------------------------------------------------------------------------------------------

def _stat_fields(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read().decode()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # the command name (field 2) may contain spaces; everything after its closing parenthesis is space-separated
    return data[data.rindex(")") + 2:].split()


def descendants(pid: int) -> list[int]:
    """pid and every live process below it (uvicorn --workers spawns its workers as children)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields is not None:
                children.setdefault(int(fields[1]), []).append(int(entry))  # fields[1] is ppid
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime of the given processes (all their threads), in seconds."""
    total = 0
    for pid in pids:
        fields = _stat_fields(pid)
        if fields is not None:
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / CLK_TCK


def machine_busy_seconds() -> float:
    """CPU time spent by the whole machine (all CPUs, everything but idle and iowait), from /proc/stat."""
    with open("/proc/stat") as fh:
        fields = [int(x) for x in fh.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def own_cpu_seconds() -> float:
    """CPU time of this process, its reaped children (stopped servers) and its live descendants."""
    me = _stat_fields(os.getpid())
    total = sum(int(x) for x in me[11:15]) / CLK_TCK  # utime, stime, cutime, cstime
    return total + cpu_seconds([p for p in descendants(os.getpid()) if p != os.getpid()])


def rss_bytes(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/statm") as fh:
                total += int(fh.read().split()[1]) * PAGE_SIZE
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total


# -- processes ----------------------------------------------------------------------------------------------------

class ServerProcess:
    """One server under test. `start()` returns the seconds from process start to the first successful request."""

    def __init__(self, name: str, argv: list[str], port: int, workdir: Path, *, env: dict | None = None,
                 probe: bytes | None = None, access_key_id: str = ACCESS_KEY_ID,
                 secret_access_key: str = SECRET_ACCESS_KEY) -> None:
        self.name = name
        self.argv = argv
        self.port = port
        self.workdir = Path(workdir)
        self.env = env
        self.endpoint = Endpoint(name, "127.0.0.1", port, access_key_id, secret_access_key)
        self.process: subprocess.Popen | None = None
        self.log_path = self.workdir / f"{name}.log"
        self._pids: list[int] | None = None
        self._probe = probe

    def start(self, timeout: float = 60.0) -> float:
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        env = dict(os.environ, **(self.env or {}))
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        started = time.perf_counter()
        self.process = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env=env)
        log.close()
        deadline = started + timeout
        while time.perf_counter() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}: {self.log_tail()}")
            if self._probe_ok():
                self._pids = None
                return time.perf_counter() - started
            time.sleep(0.005)
        raise RuntimeError(f"{self.name} did not serve a request within {timeout}s: {self.log_tail()}")

    def _probe_ok(self) -> bool:
        request = self._probe or signing.list_collaborations(self.endpoint, 1)
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=2) as sock:
                sock.sendall(request)
                response = http.client.HTTPResponse(sock)
                response.begin()
                response.read()
                return response.status == 200
        except OSError:
            return False

    @property
    def pids(self) -> list[int]:
        """The server's process tree, looked up once after start (workers do not change while it runs)."""
        if self._pids is None:
            self._pids = descendants(self.process.pid)
        return self._pids

    def refresh_pids(self) -> list[int]:
        self._pids = None
        return self.pids

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pids)

    def rss_bytes(self) -> int:
        return rss_bytes(self.refresh_pids())

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        self._pids = None

    def log_tail(self, n: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-n:] if self.log_path.exists() else ""


def create_credentials(data_dir: Path, account_id: str, access_key_id: str, secret: str) -> None:
    """What an operator does before starting the server: `opencleanrooms credentials create`."""
    subprocess.run(
        [sys.executable, "-m", "opencleanrooms", "credentials", "create", "--data-dir", str(data_dir),
         "--account-id", account_id, "--access-key-id", access_key_id, "--secret-access-key", secret],
        check=True, stdout=subprocess.DEVNULL, cwd=REPO,
    )


def ours(data_dir: Path, workdir: Path, *, workers: int = 1, port: int | None = None) -> ServerProcess:
    port = port or free_port()
    argv = [sys.executable, "-m", "opencleanrooms", "serve", "--data-dir", str(data_dir), "--host", "127.0.0.1",
            "--port", str(port), "--quota", "collaborations=200000", "--quota", "memberships=200000"]
    if workers != 1:
        argv += ["--workers", str(workers)]
    return ServerProcess("ours" if workers == 1 else f"ours-w{workers}", argv, port, workdir)


def moto(workdir: Path, *, port: int | None = None) -> ServerProcess:
    port = port or free_port()
    return ServerProcess("moto", [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], port,
                         workdir, access_key_id="AKIAMOTOBENCH0000001", secret_access_key="moto-accepts-anything")


def bare(workdir: Path, body_bytes: int, *, port: int | None = None) -> ServerProcess:
    """The stack's ceiling: uvicorn + httptools + uvloop with an app that only returns `body_bytes` bytes."""
    port = port or free_port()
    argv = [sys.executable, "-m", "uvicorn", "bench.bare_app:app", "--host", "127.0.0.1", "--port", str(port),
            "--http", "httptools", "--loop", "uvloop", "--no-access-log", "--no-server-header", "--lifespan", "off",
            "--log-level", "warning"]
    return ServerProcess("bare", argv, port, workdir, env={"BENCH_BARE_BODY_BYTES": str(body_bytes)},
                         probe=b"GET /ping HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")


def canned(workdir: Path, body_bytes: int, *, port: int | None = None) -> ServerProcess:
    """The load generator's ceiling: a raw uvloop protocol that answers every request with canned bytes."""
    port = port or free_port()
    argv = [sys.executable, "-m", "bench.canned_server", "--port", str(port), "--body-bytes", str(body_bytes)]
    return ServerProcess("canned", argv, port, workdir, probe=b"GET /ping HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
