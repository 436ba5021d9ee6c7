"""Runs a member's code in a bubblewrap (`bwrap`) sandbox: no network, no file system beyond what is bound in.

The sandbox gets new user, PID, IPC, UTS, cgroup and network namespaces (the network namespace has only loopback,
which the in-process JVM's Py4J gateway needs), every capability dropped, the system directories (/usr and its
merged-usr links, the Python installation and virtual environment, the JDK) read-only, a fresh /proc, /dev and
/tmp, and nothing else of the host: its own /etc with a few generated files, the directories the caller binds
read-only (artifacts, tables) and the only writable places, the caller's scratch and output directories. The
process runs as uid 65534 inside its user namespace. What this does and does not protect against is in SECURITY.md.

`run` waits for the process, kills the whole sandbox at the time limit or on cancellation (bwrap's own process
group; the sandbox's PID namespace dies with its first process), and never falls back to running unconfined: when
bwrap is missing or cannot create its namespaces, it raises SandboxUnavailable.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field

from opencleanrooms.engines import CancelToken

UID = 65534
_SYSTEM_LINKS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
_ETC_SHARED = ("alternatives", "localtime", "ld.so.cache")  # and /etc/java* (the JDK's configuration)
PATH = "/usr/local/bin:/usr/bin:/bin"


class SandboxUnavailable(Exception):
    """The sandbox cannot be set up on this machine (bwrap missing, namespaces not allowed)."""


class SandboxTimedOut(Exception):
    """The process ran past its time limit and was killed."""


class SandboxCancelled(Exception):
    """The process was killed because its work was cancelled."""


@dataclass(frozen=True)
class Sandbox:
    """What the sandboxed process sees: `readonly` and `writable` map paths inside to paths outside."""

    readonly: dict[str, str] = field(default_factory=dict)
    writable: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    cwd: str = "/tmp"
    bwrap: str = "bwrap"

    def command(self, argv: list[str], etc_dir: str) -> list[str]:
        """The bwrap command line; `etc_dir` is a directory of this sandbox's own /etc files (written by
        `write_etc`)."""
        executable = shutil.which(self.bwrap)
        if executable is None:
            raise SandboxUnavailable(f"the sandbox program {self.bwrap!r} (bubblewrap) is not installed")
        args = [executable, "--unshare-all", "--unshare-user", "--uid", str(UID), "--gid", str(UID),
                "--hostname", "job", "--die-with-parent", "--new-session", "--cap-drop", "ALL",
                "--ro-bind", "/usr", "/usr"]
        for name in _SYSTEM_LINKS:
            path = "/" + name
            if os.path.islink(path):
                args += ["--symlink", os.readlink(path), path]
            elif os.path.isdir(path):
                args += ["--ro-bind", path, path]
        # The fresh /tmp first: a Python or venv below /tmp (a checkout there) is then bound on top of it, not hidden
        args += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--dir", "/etc"]
        for outside in _runtime_dirs():
            args += ["--ro-bind", outside, outside]
        for name in sorted(os.listdir(etc_dir)):
            args += ["--ro-bind", os.path.join(etc_dir, name), f"/etc/{name}"]
        for name in (*_ETC_SHARED, *sorted(n for n in os.listdir("/etc") if n.startswith("java"))):
            if os.path.exists(f"/etc/{name}"):
                args += ["--ro-bind", f"/etc/{name}", f"/etc/{name}"]
        for inside, outside in sorted(self.readonly.items()):
            args += ["--ro-bind", outside, inside]
        for inside, outside in sorted(self.writable.items()):
            args += ["--bind", outside, inside]
        args += ["--clearenv", "--chdir", self.cwd]
        for key, value in sorted({"PATH": PATH, "HOME": self.cwd, "TMPDIR": "/tmp", "LANG": "C.UTF-8",
                                  **self.env}.items()):
            args += ["--setenv", key, value]
        return [*args, "--", *argv]


def write_etc(directory: str) -> str:
    """The sandbox's own /etc files: a user for its uid, a hosts file naming loopback, name lookups from files."""
    os.makedirs(directory, exist_ok=True)
    files = {
        "passwd": f"root:x:0:0:root:/root:/usr/sbin/nologin\njob:x:{UID}:{UID}:job:/tmp:/usr/sbin/nologin\n",
        "group": f"root:x:0:\njob:x:{UID}:\n",
        "hosts": "127.0.0.1 localhost job\n::1 localhost ip6-localhost\n",
        "nsswitch.conf": "passwd: files\ngroup: files\nhosts: files\n",
    }
    for name, text in files.items():
        with open(os.path.join(directory, name), "w") as handle:
            handle.write(text)
    return directory


def run(sandbox: Sandbox, argv: list[str], *, etc_dir: str, timeout: float, cancel: CancelToken,
        log_path: str) -> int:
    """Run `argv` in the sandbox; its exit status. Raises SandboxTimedOut, SandboxCancelled or
    SandboxUnavailable."""
    command = sandbox.command(argv, etc_dir)
    with open(log_path, "ab") as log:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True, close_fds=True)
    unregister = cancel.register(lambda: _kill(process))
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                code = process.wait(timeout=0.2)
                break
            except subprocess.TimeoutExpired:
                if time.monotonic() > deadline:
                    _kill(process)
                    process.wait()
                    raise SandboxTimedOut() from None
    finally:
        unregister()
    if cancel.cancelled:
        raise SandboxCancelled()
    if code != 0 and _setup_failed(log_path):
        raise SandboxUnavailable("bubblewrap could not create the sandbox (see the job log)")
    return code


def _kill(process: subprocess.Popen) -> None:
    """Kill bwrap's process group; the sandbox's first process gets SIGKILL when bwrap dies (--die-with-parent),
    and with it every process of the sandbox's PID namespace."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _setup_failed(log_path: str) -> bool:
    try:
        with open(log_path, "rb") as handle:
            return any(line.startswith(b"bwrap:") for line in handle.read().splitlines()[:20])
    except OSError:
        return False


def _runtime_dirs() -> list[str]:
    """The Python installation, the virtual environment and the JDK, when they are not under /usr."""
    candidates = {os.path.realpath(sys.prefix), os.path.realpath(sys.base_prefix)}
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        candidates.add(os.path.realpath(java_home))
    java = shutil.which("java")
    if java:
        candidates.add(os.path.dirname(os.path.dirname(os.path.realpath(java))))
    return sorted(path for path in candidates if os.path.isdir(path) and not _under(path, "/usr"))


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def java_home() -> str | None:
    """The JDK the sandboxed Spark driver runs on."""
    home = os.environ.get("JAVA_HOME")
    if home and os.path.isfile(os.path.join(home, "bin", "java")):
        return os.path.realpath(home)
    java = shutil.which("java")
    return os.path.dirname(os.path.dirname(os.path.realpath(java))) if java else None
