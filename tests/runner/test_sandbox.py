"""The job sandbox (runner/sandbox.py) with a plain Python process in it: what it can reach, what it cannot, and
that the time limit and cancellation leave no process behind. No JVM here; tests/e2e/test_protected_jobs.py runs
real PySpark jobs in the same sandbox."""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
import threading
import time
import uuid

import pytest

from opencleanrooms.engines import CancelToken
from opencleanrooms.runner import sandbox

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap (bwrap) is not installed")

PROBE = r'''
import json, os, socket, sys
found = {"uid": os.getuid(), "root": sorted(os.listdir("/"))}
def attempt(name, action):
    try:
        action()
        found[name] = "allowed"
    except Exception as exc:
        found[name] = type(exc).__name__
attempt("read_secret", lambda: open(sys.argv[2]).read())
attempt("read_shadow", lambda: open("/etc/shadow").read())
attempt("write_tables", lambda: open("/job/tables/x", "w").write("x"))
attempt("write_usr", lambda: open("/usr/x", "w").write("x"))
attempt("connect_host_port", lambda: socket.create_connection(("127.0.0.1", int(sys.argv[3])), timeout=2))
attempt("connect_outside", lambda: socket.create_connection(("192.0.2.1", 80), timeout=2))
attempt("resolve_name", lambda: socket.getaddrinfo("example.com", 80))
attempt("loopback_listen", lambda: socket.create_server(("127.0.0.1", 0)).close())
attempt("read_table", lambda: open("/job/tables/t.txt").read())
attempt("list_tests", lambda: os.listdir(sys.argv[4]))
open("/job/output/probe.json", "w").write(json.dumps(found))
'''


def _dirs(tmp_path):
    dirs = {name: tmp_path / name for name in ("tables", "output", "scratch", "etc", "code")}
    for path in dirs.values():
        path.mkdir()
    (dirs["tables"] / "t.txt").write_text("table data")
    (dirs["code"] / "probe.py").write_text(PROBE)
    sandbox.write_etc(str(dirs["etc"]))
    return dirs


def _box(dirs, **extra) -> sandbox.Sandbox:
    return sandbox.Sandbox(readonly={"/job/tables": str(dirs["tables"]), "/job/code": str(dirs["code"])},
                           writable={"/job/output": str(dirs["output"]), "/job/scratch": str(dirs["scratch"])},
                           cwd="/job/scratch", **extra)


def test_the_sandbox_sees_only_its_binds_and_no_network(tmp_path):
    dirs = _dirs(tmp_path)
    secret = tmp_path / "secret.txt"  # next to the binds, but not bound
    secret.write_text("the server's secret")
    listener = socket.create_server(("127.0.0.1", 0))  # a service on the host's loopback
    try:
        code = sandbox.run(_box(dirs), [sys.executable, "-I", "/job/code/probe.py", str(secret),
                                        str(listener.getsockname()[1]), os.path.dirname(__file__)],
                           etc_dir=str(dirs["etc"]), timeout=60, cancel=CancelToken(),
                           log_path=str(tmp_path / "log.txt"))
    finally:
        listener.close()
    assert code == 0, (tmp_path / "log.txt").read_text()
    found = json.loads((dirs["output"] / "probe.json").read_text())
    assert found["uid"] == sandbox.UID
    assert found["read_table"] == "allowed" and found["loopback_listen"] == "allowed"
    for denied in ("read_secret", "read_shadow", "write_tables", "write_usr", "connect_host_port", "connect_outside",
                   "resolve_name", "list_tests"):
        assert found[denied] != "allowed", (denied, found)
    runtime = {path.split("/")[1] for path in sandbox._runtime_dirs()}  # the Python and venv paths are bound
    system = {"bin", "sbin", "lib", "lib32", "lib64", "libx32", "usr", "dev", "proc", "tmp", "etc", "job"}
    assert set(found["root"]) <= system | runtime, found["root"]
    assert not (dirs["tables"] / "x").exists()


def _alive(marker: str) -> list[int]:
    pids = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                if marker.encode() in handle.read():
                    pids.append(int(pid))
        except OSError:
            pass
    return pids


SPAWNER = ("import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', "
           "'import time; time.sleep(600)', sys.argv[1]]); time.sleep(600)")


def test_the_time_limit_kills_every_process_of_the_sandbox(tmp_path):
    dirs = _dirs(tmp_path)
    marker = f"marker-{uuid.uuid4().hex}"
    began = time.monotonic()
    with pytest.raises(sandbox.SandboxTimedOut):
        sandbox.run(_box(dirs), [sys.executable, "-c", SPAWNER, marker], etc_dir=str(dirs["etc"]), timeout=2,
                    cancel=CancelToken(), log_path=str(tmp_path / "log.txt"))
    assert time.monotonic() - began < 15
    deadline = time.monotonic() + 5
    while _alive(marker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _alive(marker) == []


def test_cancellation_kills_the_sandbox(tmp_path):
    dirs = _dirs(tmp_path)
    marker = f"marker-{uuid.uuid4().hex}"
    token = CancelToken()
    threading.Timer(1.5, token.cancel).start()
    with pytest.raises(sandbox.SandboxCancelled):
        sandbox.run(_box(dirs), [sys.executable, "-c", SPAWNER, marker], etc_dir=str(dirs["etc"]), timeout=120,
                    cancel=token, log_path=str(tmp_path / "log.txt"))
    deadline = time.monotonic() + 5
    while _alive(marker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _alive(marker) == []


def test_no_sandbox_program_means_no_run(tmp_path):
    dirs = _dirs(tmp_path)
    with pytest.raises(sandbox.SandboxUnavailable):
        sandbox.run(_box(dirs, bwrap="no-such-bwrap"), [sys.executable, "-c", "open('/job/output/ran', 'w')"],
                    etc_dir=str(dirs["etc"]), timeout=10, cancel=CancelToken(), log_path=str(tmp_path / "log.txt"))
    assert not (dirs["output"] / "ran").exists()
