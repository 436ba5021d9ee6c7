"""pytest fixtures for code that talks to AWS Clean Rooms: a real OpenCleanRooms server for the session, and fresh
accounts with boto3 clients for each test. See docs/testing.md.

This module is loaded by every pytest run in an environment where opencleanrooms is installed, so it imports
nothing but pytest: the server starts, and boto3 is imported, only when a test asks for a fixture.
"""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def cleanrooms_server_args() -> list[str]:
    """Extra `opencleanrooms serve` flags for the session's server; override it in your conftest.py, e.g.
    `return ["--region", "eu-west-1", "--quota", "collaborations=100"]`."""
    return []


@pytest.fixture(scope="session")
def cleanrooms_server(tmp_path_factory, cleanrooms_server_args):
    """A real server on a free port, with its data in a temporary directory, for the whole session."""
    from opencleanrooms.testing.server import CleanRoomsServer

    server = CleanRoomsServer(tmp_path_factory.mktemp("opencleanrooms"), args=cleanrooms_server_args)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def cleanrooms_accounts(cleanrooms_server):
    """Fresh accounts for this test, made on first use of any name: `cleanrooms_accounts.alice.client`, `.bob`,
    `["carol"]`... Each test gets new account ids, so tests never see each other's collaborations."""
    from opencleanrooms.testing.server import Accounts

    return Accounts(cleanrooms_server)
