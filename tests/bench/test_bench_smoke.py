"""Smoke run of the benchmark (bench/): `python -m bench.run --quick` must produce a complete report.

Only the outputs' completeness is checked, never a timing: figures on a shared machine are not assertions.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.backend_independent  # the benchmark starts its own servers on SQLite data directories

REPO = Path(__file__).resolve().parents[2]


def test_quick_run_writes_a_complete_report(tmp_path):
    out = tmp_path / "results"
    proc = subprocess.run([sys.executable, "-m", "bench.run", "--quick", "--out", str(out)], cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]

    markdown = (out / "results.md").read_text()
    data = json.loads((out / "results.json").read_text())
    assert "| metric | ours | moto | ours/moto |" in markdown
    assert "## Targets" in markdown

    rows = data["rows"]
    assert rows
    for row in rows:
        assert isinstance(row["ours"], (int, float)), row
        if row["compare"]:
            assert isinstance(row["moto"], (int, float)), row
    sections = {row["section"] for row in rows}
    assert {"start-up", "N=20", "N=50"} <= sections
    assert any(s.startswith("ceiling") for s in sections)
    assert any(s.startswith("depth") for s in sections)
    metrics = " ".join(row["metric"] for row in rows)
    for expected in ("list_memberships first page, 1 conn", "list_memberships first page, 8 conn",
                     "list_collaborations first page, 1 conn", "list_collaborations first page, 8 conn",
                     "paginator walk", "create_collaboration + create_membership", "resident memory",
                     "first successful request"):
        assert expected in metrics, expected

    assert len(data["targets"]) == 6
    assert all(isinstance(t["met"], bool) and t["measured"] for t in data["targets"])
    generator = data["reference"]["generator_ceiling"]
    assert all(v["rps"] > 0 for v in generator.values())
