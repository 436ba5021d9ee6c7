"""Maps operation names to service handlers: `handler(ctx, params) -> output dict`.

Every registered handler runs again, as a whole, when its database transaction was rolled back to break a deadlock
or a serialization conflict (storage's RetryableError, PostgreSQL only): a handler's only effects are its writes,
which were undone, so running it again is safe, and the caller never sees the conflict.
"""

from __future__ import annotations

import functools
import random
import time
from collections.abc import Callable

from opencleanrooms.storage.database import RetryableError

ATTEMPTS = 5  # the last failure is raised (an internal error): something keeps conflicting

Handler = Callable[..., dict | None]
HANDLERS: dict[str, Handler] = {}


def operation(name: str) -> Callable[[Handler], Handler]:
    def register(func: Handler) -> Handler:
        if name in HANDLERS:
            raise ValueError(f"{name} registered twice")
        HANDLERS[name] = _retrying(func)
        return func

    return register


def load_all() -> dict[str, Handler]:
    """Import every service module so that its operations register."""
    from opencleanrooms.services import (  # noqa: F401
        analysis_templates,
        change_requests,
        collaborations,
        configured_tables,
        memberships,
        protected_queries,
        schemas,
        table_associations,
        tags,
    )

    return HANDLERS


def _retrying(func: Handler) -> Handler:
    @functools.wraps(func)
    def run(ctx, params):
        for attempt in range(1, ATTEMPTS + 1):
            try:
                return func(ctx, params)
            except RetryableError:
                if attempt == ATTEMPTS:
                    raise
                time.sleep(random.uniform(0, 0.01 * 2 ** attempt))  # apart, so the same pair does not collide again
        raise AssertionError("unreachable")

    return run
