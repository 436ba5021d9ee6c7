"""The worked example in docs/example.md runs, as documented, against a server started the README's way."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support.backend import storage_args
from tests.support.server import ServerProcess

ROOT = Path(__file__).resolve().parents[2]


def test_two_member_collaboration_example(tmp_path):
    data = tmp_path / "data"
    subprocess.run([sys.executable, "-m", "opencleanrooms", "catalog", "import", "--samples", *storage_args(data)],
                   check=True, capture_output=True)
    server = ServerProcess(data).start()
    try:
        result = subprocess.run([sys.executable, str(ROOT / "examples" / "two_member_collaboration.py"),
                                 server.endpoint], check=True, capture_output=True, text=True)
    finally:
        server.stop()
    seen = json.loads(result.stdout)
    assert seen["advertiser"] == seen["publisher"]
    schemas = {s["name"]: s for s in seen["publisher"]}
    assert sorted(schemas) == ["customers", "impressions"]
    assert schemas["customers"]["owner"] == "111111111111" and schemas["impressions"]["owner"] == "222222222222"
    assert [c["name"] for c in schemas["customers"]["columns"]] == ["user_id", "segment", "age_band"]
    assert [c["type"] for c in schemas["impressions"]["columns"]] == ["string", "string", "bigint"]
    assert all(s["analysisRuleTypes"] == ["LIST"] for s in schemas.values())
    assert all(s["status"] == [["DIRECT_ANALYSIS", "READY"]] for s in schemas.values())
    documented = (ROOT / "docs" / "example.md").read_text()
    assert result.stdout.strip() in documented  # the page shows exactly what the example prints


def test_protected_query_example(tmp_path):
    """The allowed query succeeds with its result delivered to the publisher, the refused one fails with the rule's
    message, exactly as docs/example.md shows (ids aside); the CLI shows and fetches the result."""
    data = tmp_path / "data"
    subprocess.run([sys.executable, "-m", "opencleanrooms", "catalog", "import", "--samples", *storage_args(data)],
                   check=True, capture_output=True)
    server = ServerProcess(data).start()
    try:
        result = subprocess.run([sys.executable, "protected_query.py", server.endpoint], cwd=ROOT / "examples",
                                check=True, capture_output=True, text=True)
    finally:
        server.stop()
    printed = json.loads(result.stdout)
    documented = (ROOT / "docs" / "example.md").read_text()
    shown = json.loads(documented.split("It prints (query ids differ from run to run):\n\n```json\n")[1].split("```")[0])
    for case in ("allowed", "refused"):
        assert {k: v for k, v in printed[case].items() if k != "id"} == {
            k: v for k, v in shown[case].items() if k != "id"}
    show = subprocess.run([sys.executable, "-m", "opencleanrooms", "query", "show", printed["allowed"]["id"],
                           *storage_args(data)], check=True, capture_output=True, text=True).stdout
    assert "SUCCESS" in show and "result for 222222222222" in show and "30 rows" in show
    out = tmp_path / "reach.csv"
    subprocess.run([sys.executable, "-m", "opencleanrooms", "query", "fetch", printed["allowed"]["id"], "--output",
                    str(out), *storage_args(data)], check=True, capture_output=True)
    assert len(out.read_text().splitlines()) == 31  # header + 30 pairs
    refused = subprocess.run([sys.executable, "-m", "opencleanrooms", "query", "show", printed["refused"]["id"],
                              *storage_args(data)], capture_output=True, text=True)
    assert refused.returncode == 1 and "MALFORMED_QUERY" in refused.stdout
