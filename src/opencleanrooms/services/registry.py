"""Maps operation names to service handlers: `handler(ctx, params) -> output dict`.

No input string may contain U+0000: PostgreSQL cannot store it (in text or JSON), so every backend refuses it
(ValidationException naming the field) before a handler runs, and the answer does not depend on the database.

Every registered handler runs again, as a whole, when its database transaction was rolled back to break a deadlock
or a serialization conflict (storage's RetryableError, PostgreSQL only): a handler's only effects are its writes,
which were undone, so running it again is safe, and the caller never sees the conflict.
"""

from __future__ import annotations

import functools
import random
import time
from collections.abc import Callable

from opencleanrooms.services import errors
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
        analysis_log_exports,
        analysis_templates,
        audience_model_associations,
        change_requests,
        collaborations,
        configured_tables,
        id_mapping_tables,
        id_namespace_associations,
        intermediate_tables,
        memberships,
        privacy_budgets,
        protected_jobs,
        protected_queries,
        schemas,
        table_associations,
        tags,
    )

    from opencleanrooms.services import wiring

    wiring.wire()
    return HANDLERS


def _retrying(func: Handler) -> Handler:
    @functools.wraps(func)
    def run(ctx, params):
        where = _nul_at(params, "")
        if where is not None:
            raise errors.validation(f"{where or 'The input'} contains the NUL character (U+0000), which is not "
                                    "accepted.", field=where or None, field_message="Contains U+0000")
        for attempt in range(1, ATTEMPTS + 1):
            try:
                return func(ctx, params)
            except RetryableError:
                if attempt == ATTEMPTS:
                    raise
                time.sleep(random.uniform(0, 0.01 * 2 ** attempt))  # apart, so the same pair does not collide again
        raise AssertionError("unreachable")

    return run


def _nul_at(value, path: str) -> str | None:
    """The dotted path of the first string (or map key) containing U+0000, or None."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            inner = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and "\x00" in key:
                return path  # the map whose key it is (the key itself is not fit to echo)
            found = _nul_at(item, inner)
            if found is not None:
                return found
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found = _nul_at(item, f"{path}.{i}" if path else str(i))
            if found is not None:
                return found
    return None
