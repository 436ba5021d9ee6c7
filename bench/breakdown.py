"""Where the CPU of one list_memberships first page goes, stage by stage, measured in-process (no sampling).

    .venv/bin/python -m bench.breakdown [--n 10000] [--iterations 2000]

Builds our app exactly as `serve` does (same settings, access log at INFO to a file), inserts N pairs for one
account through `opencleanrooms.storage`, and times (CPU time, `time.process_time`, GC enabled as in the server)
the whole `Pipeline.handle` call for a signed `GET /memberships?maxResults=100` and each of its stages separately,
plus what the same query costs through the bare `sqlite3` module, as floors. HTTP (uvicorn/httptools) is not in
these figures: compare `Pipeline.handle` with the server CPU per request of the benchmark.

This uses internals of opencleanrooms (it is a developer's tool, not part of the benchmark's contract).
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import shutil
import sqlite3
import sys
import tempfile
import time
import uuid
from pathlib import Path

from bench import seed, servers, signing


def split_request(raw: bytes) -> tuple[str, str, str, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ")
    path, _, query = target.partition("?")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return method, path, query, headers, body


def measure_all(stages: list[tuple[str, object]], iterations: int, rounds: int = 10) -> list[tuple[str, dict]]:
    """CPU time per call of each stage; stages are interleaved in `rounds` rounds so that a noisy neighbour on a
    shared machine affects all of them alike."""
    totals = {label: {"cpu": 0.0, "n": 0, "gc0": 0, "gc2": 0} for label, _ in stages}
    for label, fn in stages:  # warm-up
        for _ in range(20):
            fn()
    per_round = max(1, iterations // rounds)
    for _ in range(rounds):
        for label, fn in stages:
            gen0, gen2 = gc.get_stats()[0]["collections"], gc.get_stats()[2]["collections"]
            start_cpu = time.process_time()
            for _ in range(per_round):
                fn()
            t = totals[label]
            t["cpu"] += time.process_time() - start_cpu
            t["n"] += per_round
            t["gc0"] += gc.get_stats()[0]["collections"] - gen0
            t["gc2"] += gc.get_stats()[2]["collections"] - gen2
    return [(label, {"cpu_us": t["cpu"] / t["n"] * 1e6, "gc0_per_call": t["gc0"] / t["n"],
                     "gc2_per_call": t["gc2"] / t["n"]}) for label, t in totals.items()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.breakdown", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--iterations", type=int, default=2000)
    parser.add_argument("--out", type=Path, help="also write the table to this file")
    args = parser.parse_args(argv)

    from opencleanrooms.app import build_app
    from opencleanrooms.auth import sigv4
    from opencleanrooms.config import Settings
    from opencleanrooms.protocol import validator
    from opencleanrooms.services.pagination import PageTokens
    from opencleanrooms.storage import memberships as membership_store

    workdir = Path(tempfile.mkdtemp(prefix="ocr-breakdown-"))
    try:
        data_dir = workdir / "data"
        servers.create_credentials(data_dir, servers.ACCOUNT_ID, servers.ACCESS_KEY_ID, servers.SECRET_ACCESS_KEY)
        seed.seed_storage(data_dir, servers.ACCOUNT_ID, args.n, quiet=True)
        logging.basicConfig(level="INFO", filename=str(workdir / "access.log"),
                            format="%(asctime)s %(levelname)s %(name)s %(message)s")
        settings = Settings(data_dir=str(data_dir), quotas={"collaborations": 200000, "memberships": 200000})
        app = build_app(settings)
        pipeline = app._pipeline
        db = pipeline._make_context(request_id="-", account_id="-", region="-", operation="-").db
        endpoint = signing.Endpoint("ours", "127.0.0.1", 8000, servers.ACCESS_KEY_ID, servers.SECRET_ACCESS_KEY)
        method, path, query, headers, body = split_request(signing.list_memberships(endpoint))
        region, account = "us-east-1", servers.ACCOUNT_ID

        response = pipeline.handle(method, path, query, headers, body)
        assert response.status == 200, response.body[:300]
        page = json.loads(response.body)
        assert len(page["membershipSummaries"]) == 100

        tokens = PageTokens(b"k" * 32)
        route = pipeline._router.match(method, path)
        sql = ("SELECT seq, summary FROM memberships WHERE region = ? AND account_id = ? "
               "ORDER BY seq DESC LIMIT 101")
        raw = sqlite3.connect(str(data_dir / "opencleanrooms.db"), isolation_level=None)
        raw.execute("PRAGMA journal_mode=WAL")
        access_log = logging.getLogger("opencleanrooms.access")
        with db.read() as conn:
            rows, _ = membership_store.page_for_account(conn, region, account, None, None, 100)
        summaries = [row[1] for row in rows]

        def read_tx():
            with db.read():
                pass

        def storage_page():
            with db.read() as conn:
                membership_store.page_for_account(conn, region, account, None, None, 100)

        def raw_sql():
            raw.execute(sql, (region, account)).fetchall()

        def assemble():
            f'{{"membershipSummaries":[{",".join(summaries)}],"nextToken":"x"}}'.encode()

        stages = [
            ("Pipeline.handle, whole call (everything but HTTP)",
             lambda: pipeline.handle(method, path, query, headers, body)),
            ("sigv4.verify (credential cache hit)",
             lambda: sigv4.verify(method=method, raw_path=path, query_string=query, headers=headers, body=body,
                                  lookup_secret=pipeline._credentials.secret, regions=pipeline._regions,
                                  max_skew_seconds=300)),
            ("Router.match + RequestParser.parse + validator.validate",
             lambda: validator.validate(route.operation.input_shape, pipeline._parser.parse(
                 route.operation, route.labels, query, headers, body))),
            ("storage: page_for_account in a read transaction (seq + pre-encoded summary)", storage_page),
            ("  of which: empty read transaction (checkout, BEGIN, COMMIT, return)", read_tx),
            ("  floor: the same SQL through bare sqlite3", raw_sql),
            ("assemble the 100-item page from pre-encoded summaries", assemble),
            ("nextToken: PageTokens.encode", lambda: tokens.encode(("ListMemberships", region, account, None), 1)),
            ("access log line (logging, INFO, to a file)",
             lambda: access_log.info("request_id=%s account=%s operation=%s status=%d latency_ms=%.2f",
                                     "x", account, "ListMemberships", 200, 1.0)),
            ("request id: uuid4", lambda: str(uuid.uuid4())),
        ]
        results = measure_all(stages, args.iterations)
        lines = [f"# In-process breakdown: list_memberships first page, N={args.n:,}, {args.iterations} iterations",
                 "", f"Python {sys.version.split()[0]}; CPU time per call (time.process_time), GC enabled, stages interleaved "
                 "in 10 rounds.", "",
                 "| stage | CPU µs / call | gen-0 GCs / call | gen-2 GCs / call |", "|---|---:|---:|---:|"]
        for label, r in results:
            name = label.replace("  ", "&nbsp;&nbsp;&nbsp;&nbsp;", 1) if label.startswith("  ") else label
            lines.append(f"| {name} | {r['cpu_us']:,.0f} | {r['gc0_per_call']:.2f} | {r['gc2_per_call']:.3f} |")
        text = "\n".join(lines) + "\n"
        print(text)
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(text)
        raw.close()
        app._on_shutdown()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
