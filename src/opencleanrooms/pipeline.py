"""One request, start to finish: authenticate, route, parse, validate, dispatch, serialize.

This is where the generic layers meet: the protocol layer (router, parser, validator, serializer) knows only the
model, SigV4 knows only signatures, and the services know only their inputs and the caller. Every failure ends as
an error in the rest-json format; an unexpected one becomes InternalServerException with the request id, and its
details go only to the server log.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Mapping

from opencleanrooms.auth import sigv4
from opencleanrooms.auth.credentials import CredentialCache
from opencleanrooms.errors import ServiceError
from opencleanrooms.protocol import validator
from opencleanrooms.protocol.parser import RequestParser
from opencleanrooms.protocol.router import Router
from opencleanrooms.protocol.serializer import HttpResponse, ResponseSerializer
from opencleanrooms.services.context import RequestContext
from opencleanrooms.traffic.faults import FaultInjector
from opencleanrooms.traffic.throttle import Throttle

log = logging.getLogger("opencleanrooms")
access_log = logging.getLogger("opencleanrooms.access")


class Pipeline:
    def __init__(self, *, service_model, handlers: Mapping[str, Callable], credentials: CredentialCache,
                 regions: list[str], max_skew_seconds: int, make_context: Callable[..., RequestContext],
                 throttle: Throttle | None = None, faults: FaultInjector | None = None) -> None:
        self._router = Router(service_model)
        self._parser = RequestParser()
        self._serializer = ResponseSerializer(service_model)
        self._handlers = handlers
        self._credentials = credentials
        self._regions = frozenset(regions)
        self._max_skew = max_skew_seconds
        self._make_context = make_context
        self._throttle = throttle
        self._faults = faults or None  # an injector without rules is skipped entirely

    def handle(self, method: str, raw_path: str, query_string: str, headers: Mapping[str, str],
               body: bytes) -> HttpResponse:
        started = time.perf_counter()
        request_id = str(uuid.uuid4())
        account_id = operation = "-"
        failure = ""
        try:
            identity = sigv4.verify(
                method=method, raw_path=raw_path, query_string=query_string, headers=headers, body=body,
                lookup_secret=self._credentials.secret, regions=self._regions, max_skew_seconds=self._max_skew,
            )
            account_id = self._credentials.account(identity.access_key_id)
            route = self._router.match(method, raw_path)
            if route is None:
                shown = raw_path if len(raw_path) <= 200 else raw_path[:200] + "..."
                raise ServiceError("UnknownOperationException", f"No operation matches {method} {shown}.",
                                   status=404)
            op = route.operation
            operation = op.name
            if self._throttle is not None and not self._throttle.allow(account_id, op.name):
                raise ServiceError("ThrottlingException", "Rate exceeded")
            params = self._parser.parse(op, route.labels, query_string, headers, body)
            violations = validator.validate(op.input_shape, params) if op.input_shape is not None else []
            if violations:
                raise ServiceError(
                    "ValidationException", validator.validation_message(violations),
                    reason="FIELD_VALIDATION_FAILED",
                    fieldList=[{"name": v.path, "message": v.message} for v in violations],
                )
            if self._faults is not None:
                _inject(self._faults.fault_for(op.name), op.name)
            handler = self._handlers.get(op.name)
            if handler is None:
                raise ServiceError("NotImplementedException",
                                   f"The {op.name} operation is not implemented by OpenCleanRooms yet.", status=501)
            ctx = self._make_context(request_id=request_id, account_id=account_id, region=identity.region,
                                     operation=op.name)
            response = self._serializer.output(op, handler(ctx, params), request_id)
        except sigv4.AuthError as exc:
            response = self._serializer.error(ServiceError(exc.code, exc.message, status=exc.status), request_id)
            try:  # only to name the operation in the log
                operation = self._router.match(method, raw_path).operation.name
            except Exception:
                operation = "-"
            failure = f' auth_error={exc.code} reason="{_log_safe(exc.reason)}"'
        except ServiceError as exc:
            response = self._serializer.error(exc, request_id)
        except Exception:
            log.exception("request %s (%s) failed", request_id, operation)
            response = self._serializer.error(
                ServiceError("InternalServerException", f"An internal error occurred. Request ID: {request_id}"),
                request_id,
            )
        access_log.info("request_id=%s account=%s operation=%s status=%d latency_ms=%.2f%s", request_id, account_id,
                        operation, response.status, (time.perf_counter() - started) * 1000, failure)
        return response

    def error_response(self, error: ServiceError) -> HttpResponse:
        """For failures found before a request reaches the pipeline (for example an oversized body)."""
        return self._serializer.error(error, str(uuid.uuid4()))


def _inject(fault: str | None, operation: str) -> None:
    if fault == "crash":  # an unexpected exception carrying what must never reach a client
        raise RuntimeError(f"injected crash in {operation}: /srv/opencleanrooms/storage.py SELECT secret FROM keys")
    if fault == "ThrottlingException":
        raise ServiceError(fault, "Rate exceeded (injected fault)")
    if fault is not None:
        raise ServiceError(fault, "Internal server error (injected fault)")


def _log_safe(text: str) -> str:
    """One log line, whatever a client put in its headers."""
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ").replace("\r", " ")[:300]
