"""privacy/ stays pure: it imports nothing of services, storage, HTTP, protocol or SQLAlchemy."""

from __future__ import annotations

import ast
from pathlib import Path

import opencleanrooms.privacy

FORBIDDEN = ("opencleanrooms.services", "opencleanrooms.storage", "opencleanrooms.http", "opencleanrooms.protocol",
             "sqlalchemy")


def test_privacy_imports_nothing_impure():
    package = Path(opencleanrooms.privacy.__file__).parent
    for path in package.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                assert not name.startswith(FORBIDDEN), f"{path.name} imports {name}"
