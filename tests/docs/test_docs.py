"""Every command and snippet of README.md and docs/*.md runs exactly as written, in order, on a fresh machine.

Each page runs in a copy of the repository (the files git knows, as they are in the worktree), with a fresh HOME
(so the default data directory is empty and no ~/.aws exists) and no AWS_* variables. Fenced blocks, by language:

- `sh`: run with `bash -e`; the environment and directory it leaves (`. .venv/bin/activate`, `cd`) carry over to
  the page's next blocks, as in the reader's shell. A block whose last command is `opencleanrooms serve ...` in
  the foreground is a server the reader leaves running: it runs in the background until its banner's `try:` line
  is out, and is stopped (Ctrl-C: SIGINT to its process group) when the page starts another server or ends.
  A block whose lines start with `$ ` is a transcript: each command runs and its output must match the lines
  below it, `...` standing for any text.
- `python`: run as a script with the `python` the page's PATH finds (the venv the reader activated).
- `toml`, `json`: parsed; a TOML block of server settings is also validated as the server would.
- other fences (a layout drawing, plain text): not run.

An HTML comment on the line before a fence changes that: `<!-- docs-test: pytest -->` runs the block as a test
file with `python -m pytest`; `<!-- docs-test: skip: REASON -->` does not run it (the reason is required).

README.md starts from nothing: its first block creates `.venv` and installs the package into it, so the README's
client examples prove that the server's own venv can run them. The other pages start with this test run's venv
active, as the README tells the reader to have it. The one change made to the text: the pages' servers listen on
8000, which other test runs on the same machine may be using at the same moment, so a free port replaces 8000
(`localhost:8000`, and `--port N` added to `opencleanrooms serve`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = ["README.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md"))]
MARKER = re.compile(r"^<!--\s*docs-test:\s*(?P<what>[a-z]+)\s*(?::\s*(?P<reason>.*?))?\s*-->$")
FENCE = re.compile(r"^```(?P<lang>[A-Za-z0-9_+-]*)\s*$")
BANNER_DONE = "  try: "


@dataclass
class Block:
    page: str
    line: int
    lang: str
    text: str
    marker: str | None = None
    reason: str | None = None

    def __str__(self) -> str:
        return f"{self.page}:{self.line} ({self.lang or 'plain'})"


def blocks_of(page: str) -> list[Block]:
    lines = (ROOT / page).read_text().splitlines()
    found, i = [], 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        start, body = i, []
        i += 1
        while i < len(lines) and not lines[i].startswith("```"):
            body.append(lines[i])
            i += 1
        i += 1
        marker = MARKER.match(lines[start - 1].strip()) if start > 0 else None
        found.append(Block(page, start + 1, match["lang"], "\n".join(body) + "\n",
                           marker["what"] if marker else None, marker["reason"] if marker else None))
    return found


def test_every_marker_is_known_and_skips_say_why():
    for page in PAGES:
        text = (ROOT / page).read_text()
        for line in text.splitlines():
            if "docs-test" in line:
                match = MARKER.match(line.strip())
                assert match and match["what"] in ("skip", "pytest"), f"{page}: {line}"
                if match["what"] == "skip":
                    assert match["reason"], f"{page}: a skip needs a reason: {line}"


def test_the_readme_test_command_is_what_ci_runs():
    """The README's test command is skipped (running the suite inside the suite proves nothing); CI runs it."""
    command = next(b for b in blocks_of("README.md") if "-m pytest" in b.text)
    assert command.marker == "skip"
    assert ".venv/bin/python -m pytest" in (ROOT / ".ci" / "run").read_text()


# ------------------------------------------------------------------------------------------------ the runner


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _copy_repository(dest: Path) -> None:
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def _machine_env(home: Path, tmp: Path) -> dict[str, str]:
    """A fresh user's environment: the machine's PATH and pip configuration (package index), nothing of ours.
    `tmp` is the page's TMPDIR."""
    ours = {str(Path(sys.executable).parent), os.path.join(os.environ.get("VIRTUAL_ENV", "/nonexistent"), "bin")}
    path = [d for d in os.environ.get("PATH", "/usr/bin:/bin").split(os.pathsep) if d and d not in ours]
    env = {"PATH": os.pathsep.join(path), "HOME": str(home), "LANG": "C.UTF-8", "TMPDIR": str(tmp)}
    env.update({k: v for k, v in os.environ.items() if k.startswith("PIP_")})
    return env


class PageRunner:
    def __init__(self, page: str, workdir: Path, home: Path, env: dict[str, str], port: int) -> None:
        self.page, self.cwd, self.home, self.env, self.port = page, workdir, home, env, port
        self.server: subprocess.Popen | None = None
        self.groups: list[int] = []  # process groups of sh blocks, for what they leave running in the background
        self.server_log: Path | None = None
        self.scratch = home / "blocks"
        self.scratch.mkdir(parents=True, exist_ok=True)

    def text(self, block: Block) -> str:
        if self.port == 8000:
            return block.text
        text = block.text.replace("localhost:8000", f"localhost:{self.port}")
        return re.sub(r"opencleanrooms serve\b", f"opencleanrooms serve --port {self.port}", text)

    def run(self, block: Block) -> None:
        if block.marker == "skip" or block.lang not in ("sh", "python", "toml", "json"):
            return
        if block.marker == "pytest":
            return self.pytest(block)
        if block.lang == "toml":
            return self.toml(block)
        if block.lang == "json":
            json.loads(block.text)
            return
        if block.lang == "python":
            return self.python(block)
        if block.text.lstrip().startswith("$ "):
            return self.transcript(block)
        if _is_server(block.text):
            return self.start_server(block)
        self.shell(block)

    # -- kinds of blocks

    def shell(self, block: Block) -> None:
        """Output goes to a file, not a pipe, so that a command the block leaves running (`... &`) does not keep
        the block from ending; such commands stay in the block's process group until the page ends."""
        env_file, cwd_file, out = self.scratch / "env", self.scratch / "cwd", self.scratch / f"sh_{block.line}.log"
        script = f"{self.text(block)}\nenv -0 > {env_file}\npwd > {cwd_file}\n"
        with open(out, "w") as log:
            process = subprocess.Popen(["bash", "-e", "-c", script], cwd=self.cwd, env=self.env, stdout=log,
                                       stderr=subprocess.STDOUT, start_new_session=True)
        self.groups.append(process.pid)
        try:
            code = process.wait(timeout=600)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{block} did not end:\n{out.read_text(errors='replace')}") from None
        assert code == 0, f"{block} failed ({code}):\n{out.read_text(errors='replace')}"
        self.env = dict(item.split("=", 1) for item in env_file.read_text().split("\0") if "=" in item)
        for name in ("_", "SHLVL", "OLDPWD", "PWD"):
            self.env.pop(name, None)
        self.cwd = Path(cwd_file.read_text().strip())

    def python(self, block: Block) -> None:
        script = self.scratch / f"block_{block.line}.py"
        script.write_text(self.text(block))
        result = subprocess.run([self.which("python"), str(script)], cwd=self.cwd, env=self.env,
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, f"{block} failed:\n{result.stdout}\n{result.stderr}"

    def pytest(self, block: Block) -> None:
        directory = self.scratch / f"pytest_{block.line}"
        directory.mkdir()
        (directory / f"test_block_{block.line}.py").write_text(self.text(block))
        result = subprocess.run([self.which("python"), "-m", "pytest", "-q", "-p", "no:cacheprovider"],
                                cwd=directory, env=self.env, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, f"{block} failed:\n{result.stdout[-4000:]}\n{result.stderr[-2000:]}"
        assert " passed" in result.stdout and " failed" not in result.stdout, result.stdout

    def toml(self, block: Block) -> None:
        from opencleanrooms.config import Settings

        data = tomllib.loads(block.text)
        fields = set(Settings.__dataclass_fields__)
        if set(data) <= fields:  # server settings: the server must accept them
            Settings(**data).validate()

    def transcript(self, block: Block) -> None:
        commands: list[tuple[str, list[str]]] = []
        for line in self.text(block).splitlines():
            if line.startswith("$ "):
                commands.append((line[2:], []))
            else:
                commands[-1][1].append(line)
        for command, expected in commands:
            result = subprocess.run(["bash", "-e", "-c", command], cwd=self.cwd, env=self.env, capture_output=True,
                                    text=True, timeout=300)
            assert result.returncode == 0, f"{block}: `{command}` failed:\n{result.stdout}\n{result.stderr}"
            actual = (result.stdout + result.stderr).splitlines()
            assert len(actual) == len(expected), f"{block}: `{command}` printed:\n" + "\n".join(actual)
            for want, got in zip(expected, actual):
                pattern = ".*".join(re.escape(part) for part in want.split("..."))
                assert re.fullmatch(pattern, got), f"{block}: `{command}`:\n expected {want}\n      got {got}"

    def start_server(self, block: Block) -> None:
        self.stop_server()
        self.server_log = self.scratch / f"server_{block.line}.log"
        with open(self.server_log, "w") as log:
            self.server = subprocess.Popen(["bash", "-e", "-c", self.text(block)], cwd=self.cwd, env=self.env,
                                           stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 900  # the README's first server installs the package first
        while time.monotonic() < deadline:
            output = self.server_log.read_text(errors="replace")
            if BANNER_DONE in output:
                assert f"serving the Clean Rooms API at http://localhost:{self.port}" in output, output
                return
            if self.server.poll() is not None:
                raise AssertionError(f"{block}: the server exited with {self.server.returncode}:\n{output}")
            time.sleep(0.2)
        raise AssertionError(f"{block}: no banner:\n{self.server_log.read_text(errors='replace')}")

    def stop_background(self) -> None:
        """SIGTERM to what the page's blocks left running (a throwaway PostgreSQL server, say), then SIGKILL."""
        for signum, pause in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 0.0)):
            alive = []
            for group in self.groups:
                try:
                    os.killpg(group, signum)
                    alive.append(group)
                except ProcessLookupError:
                    pass
            if not alive:
                return
            deadline = time.monotonic() + pause
            while time.monotonic() < deadline and any(_group_alive(g) for g in alive):
                time.sleep(0.2)

    def stop_server(self) -> None:
        if self.server is None:
            return
        try:
            os.killpg(self.server.pid, signal.SIGINT)  # Ctrl-C in the reader's terminal
            self.server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.server.pid, signal.SIGKILL)
            self.server.wait()
        except ProcessLookupError:
            pass
        output = self.server_log.read_text(errors="replace")
        assert not _tracebacks(output), output[-4000:]
        self.server = None

    def which(self, name: str) -> str:
        found = shutil.which(name, path=self.env["PATH"])
        assert found, f"no {name} on the page's PATH {self.env['PATH']}"
        return found


def _tracebacks(output: str) -> list[str]:
    """The exceptions of the tracebacks in a server's output, except KeyboardInterrupt: Ctrl-C reaches every
    process of the terminal's group, and a worker process still starting up (importing) reports it so."""
    lines, found = output.splitlines(), []
    for i, line in enumerate(lines):
        if line.startswith("Traceback (most recent call last)"):
            # a worker interrupted while Python itself starts says so first ("Fatal Python error:
            # init_import_site"), then shows the KeyboardInterrupt
            final = next((x for x in lines[i + 1:] if x and not x[0].isspace()
                          and not x.startswith(("Fatal Python error: init_import_site", "Traceback ("))), "")
            if not final.startswith("KeyboardInterrupt"):
                found.append(final)
    return found


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True


def _is_server(text: str) -> bool:
    """The block's last command runs `opencleanrooms serve` in the foreground."""
    last = text.strip().replace("\\\n", " ").splitlines()[-1].strip()
    return bool(re.search(r"(^|[\s/])opencleanrooms serve\b", last)) and not last.endswith("&")


@pytest.mark.sqlite_only("the pages choose their own storage (a fresh HOME); the suite's backend does not reach "
                         "them, so a second pass would only repeat the first")
@pytest.mark.parametrize("page", PAGES)
def test_page_runs_as_written(page, tmp_path):
    blocks = blocks_of(page)
    if not any(b.lang in ("sh", "python", "toml", "json") for b in blocks):
        pytest.skip(f"{page} has no code blocks")
    workdir, home = tmp_path / "opencleanrooms", tmp_path / "home"
    workdir.mkdir()
    home.mkdir()
    _copy_repository(workdir)
    # The page's TMPDIR outside pytest's private (0700) directories: under root, docs/postgresql.md's throwaway
    # PostgreSQL server runs as `nobody` and must reach its data directory there (as .ci/run arranges for CI).
    tmp = Path(tempfile.mkdtemp(prefix="ocr-docs-"))
    tmp.chmod(0o711)
    env = _machine_env(home, tmp)
    if page != "README.md":  # the README told the reader to activate the venv for every later page
        venv = Path(sys.executable).parent
        env["PATH"] = f"{venv}{os.pathsep}{env['PATH']}"
        env["VIRTUAL_ENV"] = str(venv.parent)
    runner = PageRunner(page, workdir, home, env, _free_port())
    try:
        for block in blocks:
            runner.run(block)
    finally:
        try:
            runner.stop_server()
        finally:
            runner.stop_background()
            shutil.rmtree(tmp, ignore_errors=True)
