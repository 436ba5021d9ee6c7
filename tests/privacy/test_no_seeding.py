"""The DP code paths draw noise only from OpenDP's secure sampler: nothing in them imports a seedable generator
(random, numpy.random) or turns on OpenDP features beyond `contrib`, and there is no seed switch to turn on (the
statistical tests assert distributions over many draws instead)."""

from __future__ import annotations

import ast
import pathlib

import opencleanrooms

ROOT = pathlib.Path(opencleanrooms.__file__).parent
DP_PATHS = [*sorted((ROOT / "privacy").glob("*.py")), ROOT / "runner" / "dp.py", ROOT / "policy" / "dp.py"]
SEEDABLE = ("random", "numpy", "secrets", "torch")


def test_dp_paths_import_no_seedable_generator():
    bad = []
    for path in DP_PATHS:
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            bad += [f"{path.name}: {n}" for n in names if n.split(".")[0] in SEEDABLE]
    assert not bad, bad


def test_opendp_features_are_contrib_only_and_nothing_mentions_a_seed():
    for path in DP_PATHS:
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "enable_features":
                assert [a.value for a in node.args] == ["contrib"], path.name  # no "honest-but-curious", no RNG
        names = [n.id for n in ast.walk(tree) if isinstance(n, ast.Name)]
        names += [n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)]
        names += [k.arg or "" for n in ast.walk(tree) if isinstance(n, ast.Call) for k in n.keywords]
        assert not [n for n in names if "seed" in n.lower() or "rng" in n.lower()], path.name
