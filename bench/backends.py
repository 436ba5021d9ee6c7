"""Our server on SQLite and on PostgreSQL, with `--workers 1` and `2`, beside moto: list rows, create rows, and a
write-heavy row (concurrent joins and creates across processes), all in one run, interleaved.

    .venv/bin/python -m bench.backends                    # N = 1,000; a private PostgreSQL server of its own
    .venv/bin/python -m bench.backends --quick            # seconds: N = 50, short rows
    .venv/bin/python -m bench.backends --postgresql-url postgresql://postgres@127.0.0.1:5432/postgres

Every target of ours gets a database of its own (a fresh one on the PostgreSQL server, a fresh SQLite file), the
same credentials, and the same seeding through the API (one account creates and joins N collaborations: the
pattern moto supports). The list and create rows are measured as in bench/run.py (pre-signed requests, rounds
alternating between targets); moto is the reference for the ratios. The write-heavy row is ours only (moto's
CreateMembership cannot join another account's collaboration): a creator invites 4 accounts into each of M
collaborations, then one batch on 8 connections sends, interleaved, the 4 members' joins of every collaboration and
M more CreateCollaboration, each request once; every answer must be 200. With `--workers 2` the joins of one
collaboration land on both processes at once. Writes OUT/results.md and OUT/results.json (default
bench/results-backends/).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from bench import loadgen, seed, servers, signing
from bench.servers import ServerProcess

INVITEES = [(f"22000000000{i}", f"AKIABENCHINVITEE000{i}", f"bench-secret-invitee-{i:020d}") for i in range(1, 5)]
ACCOUNTS = [(servers.ACCOUNT_ID, servers.ACCESS_KEY_ID, servers.SECRET_ACCESS_KEY), *INVITEES]


def log(message: str) -> None:
    print(f"[bench.backends {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def storage_args(data_dir: Path, url: str | None) -> list[str]:
    return ["--data-dir", str(data_dir)] + (["--database-url", url] if url else [])


def ours(name: str, data_dir: Path, url: str | None, workdir: Path, workers: int) -> ServerProcess:
    # The accounts' keys, written with the credential store as `opencleanrooms credentials create` writes them (on
    # the migrated database), in this process: one command per account and target cost 20 Python start-ups, about
    # half a minute of the quick run, and none of it is measured.
    from opencleanrooms.storage import credentials as credential_store
    from opencleanrooms.storage.database import Database, sqlite_url

    data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(url or sqlite_url(data_dir))
    try:
        db.migrate()
        with db.write() as conn:
            for account_id, key, secret in ACCOUNTS:
                credential_store.put(conn, key, secret, account_id)
    finally:
        db.dispose()
    port = servers.free_port()
    argv = [sys.executable, "-m", "opencleanrooms", "serve", *storage_args(data_dir, url), "--host", "127.0.0.1",
            "--port", str(port), "--quota", "collaborations=200000", "--quota", "memberships=200000",
            "--throttle-profile", "none", "--workers", str(workers)]
    return ServerProcess(name, argv, port, workdir)


def new_postgresql_database(admin_url: str, name: str) -> str:
    import sqlalchemy as sa

    from opencleanrooms.storage.database import normalize_url

    admin = sa.make_url(normalize_url(admin_url))
    engine = sa.create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.exec_driver_sql(f'CREATE DATABASE "{name}" TEMPLATE template0')
    engine.dispose()
    return admin.set(database=name).render_as_string(hide_password=False)


def drop_postgresql_databases(admin_url: str, names: list[str]) -> None:
    import sqlalchemy as sa

    from opencleanrooms.storage.database import normalize_url

    engine = sa.create_engine(sa.make_url(normalize_url(admin_url)), isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        for name in names:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    engine.dispose()


def interleaved(targets: list[ServerProcess], make, concurrency: int, seconds: float, rounds: int) -> dict:
    merged = {t.name: loadgen.BatchResult() for t in targets}
    for t in targets:
        t.refresh_pids()
        loadgen.run_batch("127.0.0.1", t.port, make(t), concurrency=concurrency, duration=0.3)
    for _ in range(rounds):
        for t in targets:
            result = loadgen.run_batch("127.0.0.1", t.port, make(t), concurrency=concurrency,
                                       duration=seconds / rounds, server_cpu=t.cpu_seconds)
            bad = {s: n for s, n in result.statuses.items() if s != 200}
            if bad:
                raise RuntimeError(f"{t.name}: non-200 answers {bad}")
            merged[t.name].merge(result)
    return {name: r.summary() for name, r in merged.items()}


def create_pairs(targets: list[ServerProcess], concurrency: int, pairs: int, rounds: int) -> dict:
    totals = {t.name: (loadgen.BatchResult(), loadgen.BatchResult()) for t in targets}
    for r in range(rounds):
        for t in targets:
            t.refresh_pids()
            requests = [signing.create_collaboration(t.endpoint, f"c{concurrency}-{r}-{i}")
                        for i in range(pairs // rounds)]
            a = loadgen.run_batch("127.0.0.1", t.port, requests, concurrency=concurrency, once=True,
                                  keep_bodies=True, server_cpu=t.cpu_seconds)
            if set(a.statuses) != {200}:
                raise RuntimeError(f"create_collaboration on {t.name}: {dict(a.statuses)}")
            ids = [json.loads(a.bodies[i])["collaboration"]["id"] for i in sorted(a.bodies)]
            a.bodies.clear()
            b = loadgen.run_batch("127.0.0.1", t.port, [signing.create_membership(t.endpoint, x) for x in ids],
                                  concurrency=concurrency, once=True, server_cpu=t.cpu_seconds)
            if set(b.statuses) != {200}:
                raise RuntimeError(f"create_membership on {t.name}: {dict(b.statuses)}")
            totals[t.name][0].merge(a)
            totals[t.name][1].merge(b)
    out = {}
    for name, (a, b) in totals.items():
        sa_, sb = a.summary(), b.summary()
        out[name] = {"pairs_per_s": 1 / (1 / sa_["rps"] + 1 / sb["rps"]),
                     "server_cpu_ms_per_pair": sa_["server_cpu_ms_per_req"] + sb["server_cpu_ms_per_req"],
                     "create_collaboration": sa_, "create_membership": sb}
    return out


def write_heavy(target: ServerProcess, collaborations: int) -> dict:
    """M collaborations of 5 (creator + 4 invitees); then every invitee joins every one of them, interleaved with M
    more creates, on 8 connections, each request once."""
    creator = target.endpoint
    invitee_eps = [signing.Endpoint(target.name, "127.0.0.1", target.port, key, secret) for _, key, secret in INVITEES]
    members = [{"accountId": a, "memberAbilities": [], "displayName": f"m{a}"} for a, _, _ in INVITEES]
    setup = [signing.sign(creator, "POST", "/collaborations", body=dict(signing.COLLABORATION_BODY, name=f"w{i}",
                                                                        members=members))
             for i in range(collaborations)]
    made = loadgen.run_batch("127.0.0.1", target.port, setup, concurrency=8, once=True, keep_bodies=True)
    if set(made.statuses) != {200}:
        raise RuntimeError(f"write-heavy setup on {target.name}: {dict(made.statuses)}")
    ids = [json.loads(made.bodies[i])["collaboration"]["id"] for i in sorted(made.bodies)]
    mixed: list[bytes] = []
    for i, cid in enumerate(ids):  # the 4 joins of one collaboration next to each other: they run at once
        mixed += [signing.create_membership(ep, cid) for ep in invitee_eps]
        mixed.append(signing.sign(creator, "POST", "/collaborations", body=dict(signing.COLLABORATION_BODY,
                                                                                name=f"w-more{i}", members=members)))
    target.refresh_pids()
    result = loadgen.run_batch("127.0.0.1", target.port, mixed, concurrency=8, once=True, server_cpu=target.cpu_seconds)
    summary = result.summary()
    summary["errors"] = sum(n for s, n in result.statuses.items() if s != 200)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.backends", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--postgresql-url", help="a PostgreSQL server to create the benchmark databases on "
                        "(default: start a private one from the machine's packages)")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results-backends"))
    args = parser.parse_args(argv)
    n, seconds, rounds, pairs, heavy = (50, 0.6, 2, 20, 10) if args.quick else (1000, 4.0, 4, 400, 100)
    workdir = Path(tempfile.mkdtemp(prefix="ocr-bench-backends-"))
    private = None
    admin_url = args.postgresql_url
    if not admin_url:
        from tests.support.postgres import PrivateServer

        private = PrivateServer()
        private.start()
        admin_url = private.url
    targets: list[ServerProcess] = []
    rows: list[dict] = []
    raw: dict = {}
    started = time.perf_counter()
    try:
        for backend_name in ("sqlite", "postgresql"):
            for workers in (1, 2):
                name = f"{backend_name}-w{workers}"
                url = new_postgresql_database(admin_url, f"ocr_bench_{workers}") if backend_name == "postgresql" \
                    else None
                targets.append(ours(name, workdir / name, url, workdir, workers))
        moto = servers.moto(workdir)
        targets.append(moto)
        for t in targets:
            t.start()
        time.sleep(1.0)
        for t in targets:
            log(f"seeding {t.name}: {n} pairs")
            raw[f"seed {t.name}"] = seed.seed_api(t.endpoint, n, threads=8, quiet=True)
        for operation, make in (("list_memberships", signing.list_memberships),
                                ("list_collaborations", signing.list_collaborations)):
            for c in (1, 8):
                s = interleaved(targets, lambda t, m=make: [m(t.endpoint)], c, seconds, rounds)
                raw[f"{operation} c={c}"] = s
                log(f"{operation} c={c}: " + "; ".join(f"{k} {v['rps']:.0f}/s" for k, v in s.items()))
                rows.append({"row": f"{operation} first page (N={n:,}), {c} conn", "unit": "req/s",
                             **{k: v["rps"] for k, v in s.items()}})
        for c in (1, 8):
            s = create_pairs(targets, c, pairs, rounds)
            raw[f"create pairs c={c}"] = s
            log(f"create pairs c={c}: " + "; ".join(f"{k} {v['pairs_per_s']:.0f}/s" for k, v in s.items()))
            rows.append({"row": f"create_collaboration + create_membership, {c} conn", "unit": "pairs/s",
                         **{k: v["pairs_per_s"] for k, v in s.items()}})
        heavy_row = {"row": f"write-heavy: {heavy * 4} joins (4 members x {heavy} collaborations) + {heavy} creates, "
                     "8 conn", "unit": "req/s"}
        errors = {}
        for t in targets[:-1]:
            s = write_heavy(t, heavy)
            raw[f"write-heavy {t.name}"] = s
            heavy_row[t.name] = s["rps"]
            errors[t.name] = s["errors"]
            log(f"write-heavy {t.name}: {s['rps']:.0f} req/s, statuses {s['statuses']}")
        rows.append(heavy_row)
        rows.append({"row": "write-heavy: non-200 answers", "unit": "", **errors})
    finally:
        for t in targets:
            t.stop()
        if private is not None:
            private.stop()
        else:
            drop_postgresql_databases(admin_url, ["ocr_bench_1", "ocr_bench_2"])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    names = [t.name for t in targets]
    (out / "results.json").write_text(json.dumps({"rows": rows, "raw": raw, "n": n,
                                                  "duration_s": round(time.perf_counter() - started, 1)},
                                                 indent=1, default=str) + "\n")
    lines = ["| row | unit | " + " | ".join(names) + " | PostgreSQL w1 / SQLite w1 | PostgreSQL w2 / SQLite w2 | "
             "PostgreSQL w1 / moto |", "|---" * (len(names) + 5) + "|"]
    for row in rows:
        def cell(name):
            v = row.get(name)
            return "" if v is None else (f"{v:.0f}" if isinstance(v, float) else str(v))

        def ratio(a, b):
            x, y = row.get(a), row.get(b)
            return f"{x / y:.2f}" if isinstance(x, float) and isinstance(y, float) and y else ""

        lines.append(f"| {row['row']} | {row['unit']} | " + " | ".join(cell(k) for k in names) +
                     f" | {ratio('postgresql-w1', 'sqlite-w1')} | {ratio('postgresql-w2', 'sqlite-w2')} | "
                     f"{ratio('postgresql-w1', 'moto')} |")
    (out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
