"""Shared fixtures: one real server process for the session, and fresh accounts (with checked clients) per test."""

from __future__ import annotations

import pytest

from tests.support.server import ServerProcess

# Generous quotas for the shared server so that tests can create hundreds of resources; quota behaviour itself is
# tested on servers started with the defaults.
SHARED_SERVER_QUOTAS = ("--quota", "collaborations=5000", "--quota", "memberships=5000")


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    process = ServerProcess(tmp_path_factory.mktemp("server"), *SHARED_SERVER_QUOTAS).start()
    yield process
    process.stop()


class Party:
    """An account with its own checked boto3 client."""

    def __init__(self, server: ServerProcess) -> None:
        self.account = server.new_account()
        self.id = self.account.account_id
        self.client = server.client(self.account)


@pytest.fixture
def party(server):
    """Factory: party() -> a new account with a conformance-checked client."""
    return lambda: Party(server)
