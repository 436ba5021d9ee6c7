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


class QueryFailure(Exception):
    """Work on a query failed: `code` is a ProtectedQueryError code (MALFORMED_QUERY, INVALID_RESOURCE,
    INSUFFICIENT_COMPUTE, TRANSIENT_ERROR, ...), `message` is safe to show the member, `retryable` says whether
    running the same query again might succeed. Engines, result writers and the object store raise its kinds."""

    def __init__(self, message: str, code: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.message, self.code, self.retryable = message, code, retryable

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r}, retryable={self.retryable})"
