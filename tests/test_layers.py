"""The layers import only what they may (the project's layering rules, checked on the source):

- policy/ and privacy/ are pure: nothing of services, storage, HTTP, protocol, the engines or SQLAlchemy, so they
  are used and tested without a server or a database;
- engines/, results/ and runner/ never import services (the runner reads storage, the engines and the catalog);
- protocol/ knows nothing of Clean Rooms services or storage; storage knows nothing of services or HTTP.
"""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

import pytest

import opencleanrooms

pytestmark = pytest.mark.backend_independent

ROOT = pathlib.Path(opencleanrooms.__file__).parent
PURE = ("opencleanrooms.services", "opencleanrooms.storage", "opencleanrooms.http", "opencleanrooms.protocol",
        "opencleanrooms.engines", "opencleanrooms.results", "opencleanrooms.runner", "sqlalchemy")
RULES = {
    "policy": PURE,
    "privacy": PURE,
    "engines": ("opencleanrooms.services", "opencleanrooms.http", "opencleanrooms.protocol", "opencleanrooms.storage"),
    "results": ("opencleanrooms.services", "opencleanrooms.http", "opencleanrooms.protocol", "opencleanrooms.storage"),
    "runner": ("opencleanrooms.services", "opencleanrooms.http", "opencleanrooms.protocol"),
    "protocol": ("opencleanrooms.services", "opencleanrooms.storage"),
    "storage": ("opencleanrooms.services", "opencleanrooms.http", "opencleanrooms.protocol"),
}


def imported(path: pathlib.Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.append(node.module or "")
    return names


@pytest.mark.parametrize("package", sorted(RULES))
def test_layer_imports_nothing_it_must_not(package):
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, package
    bad = [f"{path.relative_to(ROOT)} imports {name}" for path in files for name in imported(path)
           if name.startswith(RULES[package])]
    assert not bad, "\n".join(bad)


def test_planning_a_query_loads_no_impure_module():
    code = ("import sys; from opencleanrooms.policy import warm_up; import opencleanrooms.privacy; warm_up(); "
            f"print([m for m in sys.modules if m.startswith({PURE!r})])")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
