"""The policy layer is pure: it imports no service, storage, HTTP or protocol code and no SQLAlchemy, so it can be
used (and tested) without a server or a database."""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

import opencleanrooms.policy

FORBIDDEN = ("opencleanrooms.services", "opencleanrooms.storage", "opencleanrooms.http", "opencleanrooms.protocol",
             "opencleanrooms.engines", "opencleanrooms.results", "sqlalchemy")
PACKAGE = pathlib.Path(opencleanrooms.policy.__file__).parent


def test_no_forbidden_imports_in_the_source():
    for path in PACKAGE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            for name in names:
                assert not name.startswith(FORBIDDEN), f"{path.name} imports {name}"


def test_importing_and_planning_loads_none_of_them():
    code = ("import sys; from opencleanrooms.policy import warm_up; warm_up(); "
            f"print([m for m in sys.modules if m.startswith({FORBIDDEN!r})])")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
