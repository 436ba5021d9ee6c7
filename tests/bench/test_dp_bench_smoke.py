"""Smoke run of bench/dp_bench.py on a few rows: it must complete and report both queries with and without DP.
No timing is asserted (figures on a shared machine are not assertions)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.backend_independent  # the benchmark starts its own server on a SQLite data directory

REPO = Path(__file__).resolve().parents[2]


def test_dp_bench_reports_both_queries(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "bench.dp_bench", "--rows", "2000", "--repeat", "1"], cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    figures = json.loads(proc.stdout[:proc.stdout.index("\n\n|")])
    assert figures["rows"] == 2000 and set(figures["queries"]) == {"whole table", "GROUP BY segment"}
    for f in figures["queries"].values():
        assert f["plain_s"] > 0 and f["dp_s"] > 0
    assert "| query | rows | without DP | with DP | ratio |" in proc.stdout
