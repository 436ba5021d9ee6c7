"""Access-key lookups for SigV4, cached briefly so that a signature check does not cost a query every time.

Keys changed with the CLI take effect within CACHE_SECONDS. Demo keys are ignored (treated as unknown) unless the
server accepts them, which it does only on loopback unless told otherwise.
"""

from __future__ import annotations

import threading
import time

from opencleanrooms.storage import credentials as store
from opencleanrooms.storage.database import Database

CACHE_SECONDS = 5.0


class CredentialCache:
    def __init__(self, db: Database, *, accept_demo: bool) -> None:
        self._db = db
        self._accept_demo = accept_demo
        self._cache: dict[str, tuple[float, str, str]] = {}  # key id -> (expires, secret, account)
        self._lock = threading.Lock()

    def _entry(self, access_key_id: str) -> tuple[str, str] | None:
        now = time.monotonic()
        hit = self._cache.get(access_key_id)
        if hit is not None and hit[0] > now:
            return hit[1], hit[2]
        with self._db.read() as conn:
            row = store.lookup(conn, access_key_id)
        if row is None or (row["is_demo"] and not self._accept_demo):
            self._cache.pop(access_key_id, None)
            return None
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[access_key_id] = (now + CACHE_SECONDS, row["secret_access_key"], row["account_id"])
        return row["secret_access_key"], row["account_id"]

    def secret(self, access_key_id: str) -> str | None:
        entry = self._entry(access_key_id)
        return entry[0] if entry else None

    def account(self, access_key_id: str) -> str:
        """The account of a key that has just verified (and is therefore known)."""
        entry = self._entry(access_key_id)
        if entry is None:  # deleted between the signature check and now
            raise LookupError(access_key_id)
        return entry[1]
