"""Maps operation names to service handlers: `handler(ctx, params) -> output dict`."""

from __future__ import annotations

from collections.abc import Callable

Handler = Callable[..., dict | None]
HANDLERS: dict[str, Handler] = {}


def operation(name: str) -> Callable[[Handler], Handler]:
    def register(func: Handler) -> Handler:
        if name in HANDLERS:
            raise ValueError(f"{name} registered twice")
        HANDLERS[name] = func
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
        privacy_budgets,
        protected_queries,
        schemas,
        table_associations,
        tags,
    )

    from opencleanrooms.services import wiring

    wiring.wire()
    return HANDLERS
