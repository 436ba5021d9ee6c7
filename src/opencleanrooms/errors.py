"""The one error type services raise.

A ServiceError names an error code (an error shape of the service model, or one of AWS's common errors) and carries
that shape's members. Services never choose HTTP status codes: the protocol layer looks them up in the model.
"""

from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    """An error to be returned to the caller in the protocol's error format."""

    def __init__(self, code: str, message: str, *, status: int | None = None, **fields: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status  # only needed for codes the model does not declare
        self.fields = {k: v for k, v in fields.items() if v is not None}

    def __repr__(self) -> str:
        return f"ServiceError({self.code!r}, {self.message!r})"
