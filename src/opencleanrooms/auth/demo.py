"""Documented demo accounts, created on first start when no credentials exist yet.

Their keys are public (they are in the README), so the server accepts them only while it listens on a loopback
address, unless started with --allow-demo-credentials.
"""

from __future__ import annotations

from opencleanrooms.storage import credentials as store
from opencleanrooms.storage import server_state
from opencleanrooms.storage.database import Database

DEMO_ACCOUNTS = [
    # (account id, access key id, secret access key)
    ("111111111111", "AKIAOCRDEMO111111111", "opencleanrooms-demo-secret-111111111111"),
    ("222222222222", "AKIAOCRDEMO222222222", "opencleanrooms-demo-secret-222222222222"),
    ("333333333333", "AKIAOCRDEMO333333333", "opencleanrooms-demo-secret-333333333333"),
]


def ensure_demo_credentials(db: Database) -> bool:
    """Create the demo keys if the server has no credentials at all; True if it did."""
    with db.write(locks=[server_state.LOCK]) as conn:  # processes starting together create them once
        if store.count(conn):
            return False
        for account_id, key, secret in DEMO_ACCOUNTS:
            store.put(conn, key, secret, account_id, is_demo=True)
    return True
