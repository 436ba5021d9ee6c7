"""Smoke run of `python -m bench.backends --quick` on the suite's PostgreSQL server: every row has a figure for
every target and the write-heavy batch answers only 200. No timing is asserted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import backend

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(not backend.is_postgresql(), reason="compares SQLite with PostgreSQL: runs with the PostgreSQL "
                    "backend, whose server it uses")
def test_quick_backends_run_is_complete(tmp_path):
    out = tmp_path / "results"
    proc = subprocess.run([sys.executable, "-m", "bench.backends", "--quick", "--out", str(out),
                           "--postgresql-url", os.environ[backend.URL_ENV]], cwd=REPO, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    data = json.loads((out / "results.json").read_text())
    targets = ["sqlite-w1", "sqlite-w2", "postgresql-w1", "postgresql-w2"]
    for row in data["rows"]:
        expected = targets if row["row"].startswith("write-heavy") else [*targets, "moto"]
        assert all(isinstance(row.get(t), (int, float)) for t in expected), row
    errors = next(row for row in data["rows"] if row["row"] == "write-heavy: non-200 answers")
    assert all(errors[t] == 0 for t in targets), errors
    assert "| PostgreSQL w1 / SQLite w1 |" in (out / "results.md").read_text()
