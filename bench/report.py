"""Renders the results: the issue's targets checked against the figures, and the markdown report."""

from __future__ import annotations


def _fmt(value, unit: str = "") -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return str(value)
    if unit in ("req/s", "pairs/s", "bytes") or (isinstance(value, int) and not unit):
        return f"{value:,.0f}"
    if unit == "MiB":
        return f"{value:,.1f}"
    if unit in ("ms", "s"):
        if value >= 100:
            return f"{value:,.0f}"
        if value >= 10:
            return f"{value:.1f}"
        if value >= 1:
            return f"{value:.2f}"
        return f"{value:.3f}"
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _ratio(value) -> str:
    if value is None:
        return "–"
    if value >= 100:
        return f"{value:,.0f}×"
    if value >= 10:
        return f"{value:.1f}×"
    return f"{value:.2f}×"


def _get(raw: dict, key: str, name: str, field: str):
    try:
        return raw[key][name][field]
    except (KeyError, TypeError):
        return None


def targets(bench) -> list[dict]:
    """The issue's targets, each with the figures it is judged on and whether it is met."""
    plan, raw, ref = bench.plan, bench.raw, bench.reference
    n = plan.sizes[-1]
    out = []
    cs = plan.concurrencies

    def ratio(a, b):
        return a / b if (a is not None and b) else None

    # 1. list first page at N=10,000: >= 20x moto's req/s
    figures = {f"c={c}": ratio(_get(raw, f"N={n:,} list_memberships c={c}", "ours", "rps"),
                              _get(raw, f"N={n:,} list_memberships c={c}", "moto", "rps")) for c in cs}
    figures.update({f"list_collaborations c={c}": ratio(_get(raw, f"N={n:,} list_collaborations c={c}", "ours", "rps"),
                                                        _get(raw, f"N={n:,} list_collaborations c={c}", "moto", "rps"))
                    for c in cs})
    main = [figures[f"c={c}"] for c in cs]
    out.append({"target": f"list_memberships first page at N={n:,}: ≥ 20× moto's req/s",
                "measured": ", ".join(f"{k}: {_ratio(v)}" for k, v in figures.items()),
                "met": all(v is not None and v >= 20 for v in main)})

    # 2. <= 0.5 ms server CPU per 100-item page
    cpu = {f"N={n:,} c={c}": _get(raw, f"N={n:,} list_memberships c={c}", "ours", "server_cpu_ms_per_req")
           for c in cs}
    if plan.deep:
        key = f"depth (ours only): N={plan.deep:,} vs N={plan.shallow:,} list_memberships"
        cpu.update({f"N={plan.deep:,} c={c}": _get(raw, f"{key} c={c}", f"N={plan.deep}", "server_cpu_ms_per_req")
                    for c in cs})
    out.append({"target": "≤ 0.5 ms server CPU per 100-item list_memberships page",
                "measured": ", ".join(f"{k}: {_fmt(v, 'ms')} ms" for k, v in cpu.items()),
                "met": all(v is not None and v <= 0.5 for v in cpu.values())})

    # 3. latency at N=100,000 within 1.2x of N=1,000 (same database, interleaved)
    if plan.deep:
        key = f"depth (ours only): N={plan.deep:,} vs N={plan.shallow:,} list_memberships"
        lat = {}
        for c in cs:
            for field in ("p50_ms", "p99_ms"):
                lat[f"{field[:3]} c={c}"] = ratio(_get(raw, f"{key} c={c}", f"N={plan.deep}", field),
                                                  _get(raw, f"{key} c={c}", f"N={plan.shallow}", field))
        p50 = [lat[f"p50 c={c}"] for c in cs]
        out.append({"target": f"list_memberships latency at N={plan.deep:,} within 1.2× of N={plan.shallow:,} "
                              "(judged on p50; p99 shown)",
                    "measured": ", ".join(f"{k}: {_ratio(v)}" for k, v in lat.items()),
                    "met": all(v is not None and v <= 1.2 for v in p50)})

    # 4. full paginator walk over 10,000: >= 10x faster than moto
    walk_ours = _get(raw, f"N={n:,} walk", "ours", "median_s")
    walk_moto = _get(raw, f"N={n:,} walk", "moto", "median_s")
    speedup = ratio(walk_moto, walk_ours)
    out.append({"target": f"full paginator walk over N={n:,}: ≥ 10× faster than moto",
                "measured": f"ours {_fmt(walk_ours, 's')} s, moto {_fmt(walk_moto, 's')} s: {_ratio(speedup)} faster",
                "met": speedup is not None and speedup >= 10})

    # 5. >= half of the bare-stack ceiling for the same payload
    key = f"ceiling (N={n:,}) list_memberships"
    frac = {f"c={c}": ratio(_get(raw, f"{key} c={c}", "ours", "rps"), _get(raw, f"{key} c={c}", "bare", "rps"))
            for c in cs}
    out.append({"target": "list_memberships first page: ≥ 0.5 of the bare stack's req/s for the same payload",
                "measured": ", ".join(f"{k}: {_ratio(v)}" for k, v in frac.items()),
                "met": all(v is not None and v >= 0.5 for v in frac.values())})

    # 6. first request served within 1 s of start
    start = ref.get("startup_s", {})
    shown = {"empty": start.get("ours")}
    if "ours_deep" in start:
        shown["with the depth-check data"] = start["ours_deep"]
    out.append({"target": "first request served within 1 s of process start",
                "measured": ", ".join(f"{k}: {_fmt(v, 's')} s" for k, v in shown.items())
                            + f" (moto: {_fmt(start.get('moto'), 's')} s)",
                "met": all(v is not None and v <= 1.0 for v in shown.values())})
    return out


def markdown(data: dict) -> str:
    meta, plan, rows = data["meta"], data["plan"], data["rows"]
    lines = [
        "# OpenCleanRooms vs moto: benchmark results",
        "",
        f"{meta['date']}, {meta['mode']} run ({meta.get('duration_s', '?')} s). Machine: {meta['cpus']} CPUs "
        f"({meta['cpu_model']}), Python {meta['python']}, {meta['platform']}. Versions: "
        + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()) + ". "
        + (f"Other processes on the machine used {meta['other_processes_cpu_s']} CPU-seconds during the run "
           f"({100 * meta['other_processes_cpu_s'] / max(1e-9, meta.get('duration_s') or 1) / meta['cpus']:.0f}% "
           f"of the machine); load average at the end {' '.join(meta.get('loadavg_end', []))}."
           if "other_processes_cpu_s" in meta else ""),
        "",
        f"Both servers run on loopback on this machine together with the load generator, so absolute figures are "
        f"noise: read the **ratios**, measured in the same run with the two servers interleaved "
        f"({plan['rounds']} alternating rounds, {plan['row_seconds']:g} s per server per row, after a "
        f"{plan['warmup_seconds']:g} s warm-up). Our server: `opencleanrooms serve` with default settings "
        f"(SQLite, `--workers {meta['ours_workers']}`, access log at INFO to a file); moto: `python -m moto.server` "
        f"(werkzeug, threaded; it closes the connection after every response, so the generator reconnects for each "
        f"moto request; connection setup counts in moto's req/s but not in its latencies).",
        "",
        "Data: one account creates N collaborations and joins each (CreateCollaboration + CreateMembership), through "
        "each server's API with boto3, so that both hold N collaborations and N memberships; the first page of both "
        "list operations is checked to hold 100 items before measuring. \"first page\" = "
        "`GET /memberships?maxResults=100` (or `/collaborations`), SigV4-signed once per batch and replayed over "
        "keep-alive connections. Server CPU is utime+stime of the server's process tree from /proc around each "
        "batch. Ratios are ours/moto (or ours/reference): for req/s and pairs/s higher is better for us, for "
        "latency, CPU, seconds and memory lower is better.",
        "",
    ]
    gen = data.get("reference", {}).get("generator_ceiling")
    if gen:
        lines += ["Load generator ceiling (bench/canned_server.py answers each request with canned bytes of the page's "
                  "size): " + "; ".join(f"{k.replace('c=', '')} conn: {v['rps']:,.0f} req/s, client CPU "
                                         f"{v['client_cpu_ms_per_req'] * 1000:.0f} µs/req" for k, v in gen.items())
                  + ".", ""]

    lines += ["## Targets (issue 4)", "", "| target | measured | met |", "|---|---|---|"]
    for t in data["targets"]:
        lines.append(f"| {t['target']} | {t['measured']} | {'**yes**' if t['met'] else '**no**'} |")
    if meta["mode"] == "quick":
        lines += ["", "_Quick mode: the sizes are tiny, so the targets above are not judged at the sizes they name._"]
    lines.append("")

    sections: dict[str, list[dict]] = {}
    for row in rows:
        sections.setdefault(row["section"], []).append(row)
    for section, items in sections.items():
        lines += [f"## {section}", ""]
        compare = any(r["compare"] for r in items)
        ref_name = next((r.get("reference_name") for r in items if r.get("reference_name")), "")
        if compare:
            lines += ["| metric | ours | moto | ours/moto |", "|---|---:|---:|---:|"]
        elif ref_name:
            subject = "ours" if not section.startswith("--workers") else section.split(" (")[0].replace("--", "ours --")
            if section.startswith("depth"):
                subject = section.split(": ", 1)[1].split(" vs ")[0]
            lines += [f"| metric | {subject} | {ref_name} | ratio |", "|---|---:|---:|---:|"]
        else:
            lines += ["| metric | ours | | |", "|---|---:|---:|---:|"]
        for r in items:
            unit = f" ({r['unit']})" if r["unit"] and not r["metric"].endswith(r["unit"]) else ""
            note = f" — {r['note']}" if r.get("note") else ""
            other = r.get("moto") if r["compare"] else r.get("reference")
            lines.append(f"| {r['metric']}{unit}{note} | {_fmt(r['ours'], r['unit'])} | {_fmt(other, r['unit'])} | "
                         f"{_ratio(r.get('ratio'))} |")
        lines.append("")
    return "\n".join(lines)
