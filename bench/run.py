"""OpenCleanRooms vs moto: one command that starts both servers, seeds them with the same data through their APIs,
measures them in the same run (interleaved), and writes OUT/results.md and OUT/results.json.

    .venv/bin/python -m bench.run                 # full run: N = 1,000 and 10,000 (both), 100,000 (ours)
    .venv/bin/python -m bench.run --quick         # seconds: N = 20 and 50, a small ours-only depth check
    .venv/bin/python -m bench.run --out DIR       # default bench/results/

See bench/README.md for what every row means and how it is measured.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench import loadgen, report, seed, servers, signing
from bench.servers import ServerProcess

HERE = Path(__file__).resolve().parent

# Extra accounts on our server for the depth check (N=100,000 against N=1,000 in the same database and run).
DEEP_ACCOUNT = ("210000000001", "AKIABENCHDEEP0000001", "bench-secret-deep-000000000000000000001")
SHALLOW_ACCOUNT = ("210000000002", "AKIABENCHSHALLOW0001", "bench-secret-shallow-0000000000000000001")


@dataclasses.dataclass
class Plan:
    sizes: list[int]  # N for both servers, seeded through the APIs
    deep: int  # N for the ours-only depth check, seeded through our storage layer (0: skip)
    shallow: int  # the depth check's reference account
    row_seconds: float  # measured seconds per server per row (split over `rounds` interleaved rounds)
    rounds: int
    warmup_seconds: float
    walk_repeats: int
    walk_budget_seconds: float  # stop repeating walks of one server after this much time
    create_pairs: int  # create measurement: pairs per server per concurrency (split over rounds)
    create_cap_seconds: float  # time cap of one CreateCollaboration batch
    seed_threads: int
    workers_variant: int  # also measure `serve --workers K` (0: skip)
    start_repeats: int = 3
    concurrencies: tuple[int, ...] = (1, 8)
    quick: bool = False


FULL = Plan(sizes=[1_000, 10_000], deep=100_000, shallow=1_000, row_seconds=4.0, rounds=4, warmup_seconds=0.5,
            walk_repeats=3, walk_budget_seconds=90.0, create_pairs=600, create_cap_seconds=10.0, seed_threads=8,
            workers_variant=2)
QUICK = Plan(sizes=[20, 50], deep=300, shallow=120, row_seconds=0.3, rounds=2, warmup_seconds=0.05, walk_repeats=1,
             walk_budget_seconds=5.0, create_pairs=10, create_cap_seconds=2.0, seed_threads=4, workers_variant=0,
             start_repeats=1, quick=True)

OPERATIONS = {
    "list_memberships": (signing.list_memberships, "membershipSummaries"),
    "list_collaborations": (signing.list_collaborations, "collaborationList"),
}


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class Bench:
    def __init__(self, plan: Plan, out: Path, workdir: Path, *, workers: int = 1) -> None:
        self.plan = plan
        self.out = out
        self.workdir = workdir
        self.workers = workers
        self.data_dir = workdir / "ours-data"
        self.rows: list[dict] = []
        self.raw: dict[str, dict] = {}
        self.meta: dict = {}
        self.reference: dict = {}
        self.held = {"ours": 0, "moto": 0}  # memberships (= collaborations) each server holds for the account

    # -- helpers ----------------------------------------------------------------------------------------------

    def row(self, section: str, metric: str, ours, moto=None, *, unit: str = "", better: str = "", compare=True,
            note: str = "", reference=None, reference_name: str = "") -> dict:
        entry = {"section": section, "metric": metric, "unit": unit, "better": better, "ours": ours,
                 "compare": compare, "note": note}
        if compare:
            entry["moto"] = moto
            entry["ratio"] = (ours / moto) if (ours is not None and moto) else None
        if reference is not None:
            entry["reference"] = reference
            entry["reference_name"] = reference_name
            entry["ratio"] = (ours / reference) if (ours is not None and reference) else None
        self.rows.append(entry)
        return entry

    def interleaved(self, key: str, targets: list[tuple[str, ServerProcess, Callable[[], list[bytes]]]],
                    concurrency: int) -> dict[str, dict]:
        """Measure each target for row_seconds in `rounds` alternating rounds; requests are signed per batch."""
        plan = self.plan
        merged = {name: loadgen.BatchResult() for name, _, _ in targets}
        for server in {id(s): s for _, s, _ in targets}.values():
            server.refresh_pids()
        for name, server, make in targets:  # warm-up (not recorded)
            loadgen.run_batch("127.0.0.1", server.port, make(), concurrency=concurrency,
                              duration=plan.warmup_seconds)
        for _ in range(plan.rounds):
            for name, server, make in targets:
                result = loadgen.run_batch("127.0.0.1", server.port, make(), concurrency=concurrency,
                                           duration=plan.row_seconds / plan.rounds, server_cpu=server.cpu_seconds)
                bad = {s: n for s, n in result.statuses.items() if s != 200}
                if bad:
                    raise RuntimeError(f"{key} on {name}: non-200 answers {bad}")
                merged[name].merge(result)
        summaries = {name: result.summary() for name, result in merged.items()}
        self.raw[key] = summaries
        log(f"{key}: " + "; ".join(f"{n} {s['rps']:.0f} req/s p50 {s['p50_ms']:.2f} ms "
                                   f"cpu {s['server_cpu_ms_per_req']:.3f} ms/req" for n, s in summaries.items()))
        return summaries

    def list_rows(self, section: str, operation: str, ours_target, other_target, *, compare: bool = True,
                  other_label: str = "moto") -> dict[int, dict]:
        """The four figures of one list operation at each concurrency, as rows."""
        results = {}
        for c in self.plan.concurrencies:
            key = f"{section} {operation} c={c}"
            s = self.interleaved(key, [ours_target, other_target], c)
            ours, other = s[ours_target[0]], s[other_target[0]]
            label = f"{operation} first page, {c} conn"
            for metric, field, unit, better in (("req/s", "rps", "req/s", "higher"),
                                                ("p50 latency", "p50_ms", "ms", "lower"),
                                                ("p99 latency", "p99_ms", "ms", "lower"),
                                                ("server CPU per request", "server_cpu_ms_per_req", "ms", "lower")):
                if compare:
                    self.row(section, f"{label}: {metric}", ours[field], other[field], unit=unit, better=better)
                else:
                    self.row(section, f"{label}: {metric}", ours[field], unit=unit, better=better, compare=False,
                             reference=other[field], reference_name=other_label)
            results[c] = s
        return results

    def verify_first_page(self, server: ServerProcess, endpoint: signing.Endpoint, n: int) -> dict:
        """Both operations must answer min(100, n) items (and a nextToken when more follow) before measuring."""
        client = seed.client(endpoint)
        sizes = {}
        for operation, (_, key) in OPERATIONS.items():
            page = getattr(client, operation)(maxResults=100)
            got, expected = len(page[key]), min(100, n)
            if got != expected or (n > 100) != ("nextToken" in page):
                raise RuntimeError(f"{server.name} {operation}: first page has {got} items (expected {expected}), "
                                   f"nextToken {'present' if 'nextToken' in page else 'absent'} with N={n}")
            sizes[operation] = page[key][0] if page[key] else None
        return sizes

    def walk_rows(self, section: str, n: int, targets: list[tuple[str, signing.Endpoint]]) -> dict[str, dict]:
        plan = self.plan
        times: dict[str, list[float]] = {name: [] for name, _ in targets}
        client: dict[str, list[float]] = {name: [] for name, _ in targets}
        spent = {name: 0.0 for name, _ in targets}
        for _ in range(plan.walk_repeats):
            for name, endpoint in targets:
                if times[name] and spent[name] > plan.walk_budget_seconds:
                    continue
                result = seed.walk(endpoint)
                if result["items"] != n:
                    raise RuntimeError(f"{name}: the paginator walk saw {result['items']} items, expected {n}")
                times[name].append(result["seconds"])
                client[name].append(result["client_cpu_s"])
                spent[name] += result["seconds"]
        summary = {name: {"median_s": statistics.median(t), "runs_s": t, "pages": -(-n // 100),
                          "client_cpu_s": statistics.median(client[name])} for name, t in times.items()}
        self.raw[f"{section} walk"] = summary
        log(f"{section} walk over {n}: " + "; ".join(f"{k} {v['median_s']:.3f} s" for k, v in summary.items()))
        return summary

    def seed_to(self, n: int, ours: ServerProcess, moto: ServerProcess) -> dict:
        figures = {}
        for name, server in (("ours", ours), ("moto", moto)):
            count = n - self.held[name]
            log(f"seeding {name} through its API: {count} pairs ({self.held[name]} -> {n}), "
                f"{self.plan.seed_threads} threads")
            figures[name] = seed.seed_api(server.endpoint, count, threads=self.plan.seed_threads,
                                          label=f"seeding {name}", start_index=self.held[name],
                                          quiet=self.plan.quick)
            self.held[name] = n
        return figures

    def creates(self, section: str, ours: ServerProcess, moto: ServerProcess) -> None:
        """CreateCollaboration then CreateMembership for each created collaboration, pre-signed, per concurrency."""
        plan = self.plan
        for c in plan.concurrencies:
            totals = {name: {"collab": loadgen.BatchResult(), "membership": loadgen.BatchResult()}
                      for name in ("ours", "moto")}
            per_round = max(1, plan.create_pairs // plan.rounds)
            for r in range(plan.rounds):
                for name, server in (("ours", ours), ("moto", moto)):
                    ep = server.endpoint
                    server.refresh_pids()
                    collab_requests = [signing.create_collaboration(ep, f"create-c{c}-r{r}-{i}")
                                       for i in range(per_round)]
                    a = loadgen.run_batch("127.0.0.1", server.port, collab_requests, concurrency=c, once=True,
                                          duration=plan.create_cap_seconds / plan.rounds, keep_bodies=True,
                                          server_cpu=server.cpu_seconds)
                    if set(a.statuses) != {200}:
                        raise RuntimeError(f"create_collaboration on {name}: {dict(a.statuses)} "
                                           f"{next(iter(a.bodies.values()), b'')[:300]!r}")
                    ids = [json.loads(a.bodies[i])["collaboration"]["id"] for i in sorted(a.bodies)]
                    b = loadgen.run_batch("127.0.0.1", server.port, [signing.create_membership(ep, x) for x in ids],
                                          concurrency=c, once=True, server_cpu=server.cpu_seconds)
                    if set(b.statuses) != {200} or b.requests != len(ids):
                        raise RuntimeError(f"create_membership on {name}: {dict(b.statuses)}")
                    a.bodies.clear()
                    totals[name]["collab"].merge(a)
                    totals[name]["membership"].merge(b)
                    self.held[name] += len(ids)
            figures = {}
            for name, t in totals.items():
                sa, sb = t["collab"].summary(), t["membership"].summary()
                figures[name] = {
                    "pairs": sb["requests"],
                    # time per pair = time per CreateCollaboration + time per CreateMembership
                    "pairs_per_s": 1 / (1 / sa["rps"] + 1 / sb["rps"]),
                    "server_cpu_ms_per_pair": sa["server_cpu_ms_per_req"] + sb["server_cpu_ms_per_req"],
                    "create_collaboration": sa, "create_membership": sb,
                }
            self.raw[f"{section} create pairs c={c}"] = figures
            log(f"create pairs c={c}: " + "; ".join(f"{k} {v['pairs_per_s']:.0f} pairs/s" for k, v in figures.items()))
            self.row(section, f"create_collaboration + create_membership, {c} conn: pairs/s",
                     figures["ours"]["pairs_per_s"], figures["moto"]["pairs_per_s"], unit="pairs/s", better="higher")
            self.row(section, f"create_collaboration + create_membership, {c} conn: server CPU per pair",
                     figures["ours"]["server_cpu_ms_per_pair"], figures["moto"]["server_cpu_ms_per_pair"], unit="ms",
                     better="lower")

    # -- the run ----------------------------------------------------------------------------------------------

    def run(self) -> None:
        plan = self.plan
        started = time.perf_counter()
        self.meta = environment(plan, self.workers)
        busy0, own0 = servers.machine_busy_seconds(), servers.own_cpu_seconds()
        account = (servers.ACCOUNT_ID, servers.ACCESS_KEY_ID, servers.SECRET_ACCESS_KEY)
        for acc in (account, DEEP_ACCOUNT, SHALLOW_ACCOUNT):
            servers.create_credentials(self.data_dir, *acc)
        ours = servers.ours(self.data_dir, self.workdir, workers=self.workers)
        moto = servers.moto(self.workdir)
        extra: list[ServerProcess] = []
        try:
            # -- start-up
            log("starting our server and moto")
            starts: dict[str, list[float]] = {"ours": [], "moto": []}
            for i in range(plan.start_repeats):
                for name, server in (("ours", ours), ("moto", moto)):
                    starts[name].append(server.start())
                    if i < plan.start_repeats - 1:
                        server.stop()
            t_ours, t_moto = statistics.median(starts["ours"]), statistics.median(starts["moto"])
            self.reference["startup_s"] = {"ours": t_ours, "moto": t_moto, "runs": starts}
            section = "start-up"
            self.row(section, "time from process start to first successful request (empty)", t_ours, t_moto,
                     unit="s", better="lower", note=f"median of {plan.start_repeats} starts")
            self.row(section, "resident memory, empty", ours.rss_bytes() / 2**20, moto.rss_bytes() / 2**20,
                     unit="MiB", better="lower")

            # -- N = sizes, both servers
            bare_body = None
            for index, n in enumerate(plan.sizes):
                section = f"N={n:,}"
                figures = self.seed_to(n, ours, moto)
                self.raw[f"{section} seeding"] = figures
                self.row(section, f"seeding through the API with boto3, {plan.seed_threads} threads "
                         f"({figures['ours']['pairs']} pairs)", figures["ours"]["pairs_per_s"],
                         figures["moto"]["pairs_per_s"], unit="pairs/s", better="higher",
                         note="client-bound (boto3 signing and parsing on the same cores); informational")
                self.row(section, "resident memory after seeding", ours.rss_bytes() / 2**20,
                         moto.rss_bytes() / 2**20, unit="MiB", better="lower")
                for name, server in (("ours", ours), ("moto", moto)):
                    self.verify_first_page(server, server.endpoint, n)
                for operation, (make, _) in OPERATIONS.items():
                    results = self.list_rows(section, operation,
                                             ("ours", ours, lambda m=make: [m(ours.endpoint)]),
                                             ("moto", moto, lambda m=make: [m(moto.endpoint)]))
                    if operation == "list_memberships":
                        body_bytes = {name: results[1][name]["response_bytes"] for name in ("ours", "moto")}
                        self.row(section, "list_memberships first page: response body", body_bytes["ours"],
                                 body_bytes["moto"], unit="bytes")
                        bare_body = body_bytes["ours"]
                walk = self.walk_rows(section, n, [("ours", ours.endpoint), ("moto", moto.endpoint)])
                self.row(section, f"full boto3 paginator walk over {n:,} memberships ({-(-n // 100)} pages)",
                         walk["ours"]["median_s"], walk["moto"]["median_s"], unit="s", better="lower",
                         note=f"median of {len(walk['ours']['runs_s'])} (ours) / {len(walk['moto']['runs_s'])} "
                              "(moto) walks")
                self.row(section, "paginator walk: boto3 client CPU time (signing, parsing 100 items per page)",
                         walk["ours"]["client_cpu_s"], walk["moto"]["client_cpu_s"], unit="s",
                         note="the same client work for both: a floor under any server's walk time")
                if index == 0:  # writes change N; done at the first size, topped up to the next size after
                    self.creates(section, ours, moto)

            # -- the stack's ceiling and the generator's ceiling
            n = plan.sizes[-1]
            section = f"ceiling (N={n:,})"
            log(f"bare ASGI app on the same stack, body {bare_body} bytes")
            bare = servers.bare(self.workdir, bare_body)
            extra.append(bare)
            self.reference["bare_start_s"] = bare.start()
            self.list_rows(section, "list_memberships", ("ours", ours, lambda: [signing.list_memberships(ours.endpoint)]),
                           ("bare", bare, lambda: [signing.list_memberships(bare.endpoint)]), compare=False,
                           other_label="bare app")
            bare.stop()
            canned = servers.canned(self.workdir, bare_body)
            extra.append(canned)
            canned.start()
            generator = {}
            for c in plan.concurrencies:
                canned.refresh_pids()
                result = loadgen.run_batch("127.0.0.1", canned.port, [signing.list_memberships(canned.endpoint)],
                                           concurrency=c, duration=max(0.2, plan.row_seconds / 2),
                                           server_cpu=canned.cpu_seconds)
                generator[f"c={c}"] = result.summary()
            canned.stop()
            self.reference["generator_ceiling"] = generator
            log("generator ceiling: " + "; ".join(f"{k} {v['rps']:.0f} req/s, client "
                                                  f"{v['client_cpu_ms_per_req'] * 1000:.0f} us/req"
                                                  for k, v in generator.items()))

            # -- several worker processes
            if plan.workers_variant and self.workers == 1:
                section = f"--workers {plan.workers_variant} (N={n:,})"
                log(f"starting a second server on the same database with --workers {plan.workers_variant}")
                multi = servers.ours(self.data_dir, self.workdir, workers=plan.workers_variant)
                extra.append(multi)
                self.reference["workers_start_s"] = multi.start()
                time.sleep(1.0)  # let every worker come up
                self.list_rows(section, "list_memberships",
                               (multi.name, multi, lambda: [signing.list_memberships(multi.endpoint)]),
                               ("ours", ours, lambda: [signing.list_memberships(ours.endpoint)]),
                               compare=False, other_label="ours --workers 1")
                multi.stop()

            moto.stop()

            # -- depth: ours only, N = deep against N = shallow in the same database
            if plan.deep:
                section = f"depth (ours only): N={plan.deep:,} vs N={plan.shallow:,}"
                deep_ep = signing.Endpoint("ours-deep", "127.0.0.1", ours.port, *DEEP_ACCOUNT[1:])
                shallow_ep = signing.Endpoint("ours-shallow", "127.0.0.1", ours.port, *SHALLOW_ACCOUNT[1:])
                log(f"seeding {plan.deep:,} + {plan.shallow:,} pairs through opencleanrooms.storage (not the API)")
                s1 = seed.seed_storage(self.data_dir, SHALLOW_ACCOUNT[0], plan.shallow, quiet=plan.quick,
                                       label=f"storage seeding N={plan.shallow}")
                s2 = seed.seed_storage(self.data_dir, DEEP_ACCOUNT[0], plan.deep, quiet=plan.quick,
                                       label=f"storage seeding N={plan.deep}")
                self.raw[f"{section} seeding"] = {"shallow": s1, "deep": s2}
                api_item = self.verify_first_page(ours, ours.endpoint, self.held["ours"])
                deep_item = self.verify_first_page(ours, deep_ep, plan.deep)
                self.verify_first_page(ours, shallow_ep, plan.shallow)
                for operation in OPERATIONS:
                    if api_item[operation] and set(api_item[operation]) != set(deep_item[operation]):
                        raise RuntimeError(f"storage-seeded {operation} items differ from API-seeded ones: "
                                           f"{sorted(set(api_item[operation]) ^ set(deep_item[operation]))}")
                self.row(section, f"seeding through opencleanrooms.storage ({plan.deep:,} pairs)",
                         s2["pairs_per_s"], unit="pairs/s", compare=False,
                         note="direct inserts in batches of 2,000 per transaction, not the API")
                for operation, (make, _) in OPERATIONS.items():
                    self.list_rows(section, operation,
                                   (f"N={plan.deep}", ours, lambda m=make: [m(deep_ep)]),
                                   (f"N={plan.shallow}", ours, lambda m=make: [m(shallow_ep)]), compare=False,
                                   other_label=f"N={plan.shallow:,}")
                walk = self.walk_rows(section, plan.deep, [("ours", deep_ep)])
                self.row(section, f"full boto3 paginator walk over {plan.deep:,} memberships", walk["ours"]["median_s"],
                         unit="s", better="lower", compare=False)
                total = self.held["ours"] + plan.deep + plan.shallow
                self.row(section, f"resident memory ({total:,} memberships stored)", ours.rss_bytes() / 2**20,
                         unit="MiB", compare=False)
                restarts = []
                for _ in range(plan.start_repeats):
                    ours.stop()
                    restarts.append(ours.start())
                restart = statistics.median(restarts)
                self.reference["startup_s"]["ours_deep"] = restart
                self.reference["startup_s"]["runs"]["ours_deep"] = restarts
                self.row(section, f"time from process start to first successful request ({total:,} memberships "
                         "stored)", restart, unit="s", better="lower", compare=False,
                         note=f"median of {plan.start_repeats} starts")
        finally:
            for server in (ours, moto, *extra):
                server.stop()
        self.meta["duration_s"] = round(time.perf_counter() - started, 1)
        other = (servers.machine_busy_seconds() - busy0) - (servers.own_cpu_seconds() - own0)
        self.meta["other_processes_cpu_s"] = round(max(0.0, other), 1)
        self.meta["loadavg_end"] = Path("/proc/loadavg").read_text().split()[:3]

    def write(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        targets = report.targets(self)
        data = {"meta": self.meta, "plan": dataclasses.asdict(self.plan), "rows": self.rows, "targets": targets,
                "reference": self.reference, "raw": self.raw}
        (self.out / "results.json").write_text(json.dumps(data, indent=1, default=str) + "\n")
        (self.out / "results.md").write_text(report.markdown(data))
        log(f"wrote {self.out / 'results.md'} and {self.out / 'results.json'}")


def environment(plan: Plan, workers: int) -> dict:
    from importlib.metadata import version

    def v(name: str) -> str:
        try:
            return version(name)
        except Exception:  # noqa: BLE001
            return "?"

    try:
        with open("/proc/cpuinfo") as fh:
            model = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), "?")
    except OSError:
        model = "?"
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "mode": "quick" if plan.quick else "full",
        "cpus": os.cpu_count(), "cpu_model": model, "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": {p: v(p) for p in ("opencleanrooms", "moto", "botocore", "uvicorn", "httptools", "uvloop",
                                       "SQLAlchemy", "Werkzeug")},
        "ours_workers": workers,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, ~0.3 s per row (a smoke run)")
    parser.add_argument("--out", type=Path, default=HERE / "results", help="output directory (default bench/results)")
    parser.add_argument("--workers", type=int, default=1, help="run our server with --workers N (default 1)")
    parser.add_argument("--row-seconds", type=float, help="measured seconds per server per row")
    parser.add_argument("--sizes", help="comma-separated N for both servers, e.g. 1000,10000")
    parser.add_argument("--deep", type=int, help="N of the ours-only depth check (0 to skip)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary data directory and server logs")
    args = parser.parse_args(argv)
    plan = dataclasses.replace(QUICK if args.quick else FULL)
    if args.row_seconds:
        plan.row_seconds = args.row_seconds
    if args.sizes:
        plan.sizes = [int(x) for x in args.sizes.split(",")]
    if args.deep is not None:
        plan.deep = args.deep
    workdir = Path(tempfile.mkdtemp(prefix="ocr-bench-"))
    bench = Bench(plan, args.out, workdir, workers=args.workers)
    try:
        bench.run()
        bench.write()
    except BaseException:
        log(f"failed; server logs are in {workdir}")
        raise
    else:
        if args.keep:
            log(f"data and logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
