"""Profile our server under the list_memberships first-page load, with py-spy (not a dependency of the project:
`pip install py-spy`; it samples the server process from outside, without blocking it).

    .venv/bin/python -m bench.profile [--n 10000] [--seconds 20] [--concurrency 1] [--out bench/results/profile]

Starts our server on a fresh data directory, inserts N pairs for the benchmark account through
`opencleanrooms.storage` (the rows the API would create; the API path is irrelevant to the list call profiled),
replays the pre-signed first-page request on keep-alive connections while py-spy records, and prints the share of
the server's samples per function (inclusive and self) and the server CPU per request they account for.
Writes OUT/profile.txt (collapsed stacks), OUT/profile.speedscope.json and OUT/profile.md.
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench import loadgen, seed, servers, signing

HERE = Path(__file__).resolve().parent

# Inclusive groups: a sample counts for a group when any frame of its stack matches (first match in this order
# is not required: groups may overlap, e.g. SQLAlchemy inside fetch_page).
GROUPS = [
    ("uvicorn request cycle (RequestResponseCycle.run_asgi and send, all below)", ("httptools_impl.py",)),
    ("  AsgiApp.__call__ (our adapter, everything below it)", ("AsgiApp.__call__",)),
    ("    Pipeline.handle", ("Pipeline.handle",)),
    ("      sigv4.verify", ("verify (opencleanrooms/auth/sigv4.py",)),
    ("      CredentialCache lookups", ("CredentialCache.",)),
    ("      Router.match", ("Router.match",)),
    ("      RequestParser.parse", ("RequestParser.parse",)),
    ("      validator.validate", ("validate (opencleanrooms/protocol/validator.py",)),
    ("      list_page (service + storage)", ("list_page (",)),
    ("        Database.read (connection checkout, BEGIN, COMMIT/ROLLBACK)", ("Database.read",)),
    ("        fetch_page (query build + execute + rows)", ("fetch_page (",)),
    ("          SQLAlchemy statement compile/cache key", ("compile", "_generate_cache_key", "_gen_cache_key")),
    ("          sqlite3 cursor execute/fetch (C)", ("Cursor.execute", "fetchall", "fetchmany")),
    ("          MappingResult.all (inclusive: sqlite fetch, JSON decode, row objects)", ("MappingResult.all",)),
    ("          JSON column decode (json.loads of doc columns)", ("json/decoder.py", "loads (json")),
    ("        _summary (row -> output dict)", ("_summary (opencleanrooms/services/memberships.py",)),
    ("        PageTokens.encode (nextToken HMAC)", ("PageTokens.encode",)),
    ("      ResponseSerializer.output (json.dumps)", ("ResponseSerializer.output",)),
    ("      logging (access log line)", ("logging/__init__.py",)),
    ("      uuid4 (request id)", ("uuid4",)),
]


def parse_collapsed(path: Path) -> list[tuple[list[str], int]]:
    stacks = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        frames, _, count = line.rpartition(" ")
        stacks.append((frames.split(";"), int(count)))
    return stacks


def analyse(stacks: list[tuple[list[str], int]], cpu_ms_per_req: float, top: int = 30) -> str:
    total = sum(c for _, c in stacks)
    inclusive: collections.Counter = collections.Counter()
    self_time: collections.Counter = collections.Counter()
    groups: collections.Counter = collections.Counter()
    for frames, count in stacks:
        for name in set(frames):
            inclusive[name] += count
        self_time[frames[-1]] += count
        for label, needles in GROUPS:
            if any(any(n in f for n in needles) for f in frames):
                groups[label] += count

    def share(n: int) -> str:
        return f"{100 * n / total:5.1f}% | {cpu_ms_per_req * n / total:.3f}"

    out = [f"{total} samples; server CPU {cpu_ms_per_req:.3f} ms per request (from /proc during the profile)", "",
           "### By area (inclusive)", "", "| area | share of samples | ms CPU / request |", "|---|---:|---:|"]
    for label, _ in GROUPS:
        indent = (len(label) - len(label.lstrip())) // 2
        out.append(f"| {'&nbsp;&nbsp;' * indent}{label.strip()} | {share(groups[label])} |")
    out += ["", f"### Top {top} functions by self time", "", "| function | self | ms / request | inclusive |",
            "|---|---:|---:|---:|"]
    for name, n in self_time.most_common(top):
        out.append(f"| `{name}` | {100 * n / total:.1f}% | {cpu_ms_per_req * n / total:.3f} | "
                   f"{100 * inclusive[name] / total:.1f}% |")
    out += ["", f"### Top {top} functions by inclusive time", "", "| function | inclusive | ms / request |",
            "|---|---:|---:|"]
    for name, n in inclusive.most_common(top):
        out.append(f"| `{name}` | {100 * n / total:.1f}% | {cpu_ms_per_req * n / total:.3f} |")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=10_000, help="memberships of the profiled account")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--operation", choices=["list_memberships", "list_collaborations"],
                        default="list_memberships")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "profile")
    parser.add_argument("--by-line", action="store_true", help="keep line numbers (default: one entry per function)")
    parser.add_argument("--native", action="store_true", help="also sample native frames (py-spy --native; this "
                        "pauses the server for each sample, so the load figures are lower)")
    args = parser.parse_args(argv)
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(py_spy).exists():
        print("py-spy is not installed: pip install py-spy", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="ocr-profile-"))
    data_dir = workdir / "data"
    servers.create_credentials(data_dir, servers.ACCOUNT_ID, servers.ACCESS_KEY_ID, servers.SECRET_ACCESS_KEY)
    seed.seed_storage(data_dir, servers.ACCOUNT_ID, args.n)
    server = servers.ours(data_dir, workdir)
    make = getattr(signing, args.operation)
    try:
        server.start()
        loadgen.run_batch("127.0.0.1", server.port, [make(server.endpoint)], concurrency=args.concurrency,
                          duration=1.0)  # warm-up
        results: dict = {}

        def load() -> None:
            results["batch"] = loadgen.run_batch(
                "127.0.0.1", server.port, [make(server.endpoint)], concurrency=args.concurrency,
                duration=args.seconds, server_cpu=server.cpu_seconds)

        for fmt, name in (("raw", "profile.txt"), ("speedscope", "profile.speedscope.json")):
            thread = threading.Thread(target=load)
            thread.start()
            time.sleep(0.2)
            subprocess.run([py_spy, "record", "--pid", str(server.process.pid), "--duration",
                            str(int(args.seconds - 1)), "--rate", str(args.rate), "--format", fmt,
                            "--output", str(args.out / name),
                            *([] if args.by_line else ["--function"]),
                            *(["--native"] if args.native else ["--nonblocking"])],
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            thread.join()
            if fmt == "raw":
                summary = results["batch"].summary()
        text = analyse(parse_collapsed(args.out / "profile.txt"), summary["server_cpu_ms_per_req"])
        header = (f"# Profile: {args.operation} first page (maxResults=100), N={args.n:,}, {args.concurrency} "
                  f"connection(s), {args.seconds:g} s, py-spy {args.rate} Hz "
                  f"{'--native' if args.native else '--nonblocking'}{'' if args.by_line else ' --function'}\n\n"
                  f"Load during the profile: {summary['rps']:.0f} req/s, p50 {summary['p50_ms']:.2f} ms, "
                  f"server CPU {summary['server_cpu_ms_per_req']:.3f} ms/req.\n\n")
        (args.out / "profile.md").write_text(header + text)
        print(header + text)
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
