"""Figures that robustness tests report (seed, requests fuzzed, attacks tried, kills survived...).

Import the ``figures`` fixture into a test module; ``figures(line)`` prints the line (seen with ``-s`` and in a
failing test's captured output) and repeats all lines in a "robustness figures" section at the end of the session.
"""

from __future__ import annotations

import contextlib

import pytest

_LINES: list[str] = []


def record(line: str) -> None:
    _LINES.append(line)
    print(line)


@pytest.fixture(scope="session")
def figures(request):
    yield record
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or not _LINES:
        return
    with capture.global_and_fixture_disabled() if capture is not None else contextlib.nullcontext():
        reporter.write_line("")
        reporter.write_sep("-", "robustness figures")
        for line in _LINES:
            reporter.write_line(line)
    _LINES.clear()
