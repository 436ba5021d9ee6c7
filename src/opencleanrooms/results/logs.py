"""Analysis log exports: a query's redacted log written as JSON Lines to S3 or to the server's local results
directory, through the same settings and layout rules as query results (see this package's docstring).

The object is `<keyPrefix>/<collaborationId>/<protectedQueryId>/<analysisLogExportId>/events.jsonl`: the path names
the collaboration, the query and the export, so a second export of the same query never overwrites the first. Like
results, the file is written under a temporary name (local) or by a single PUT (S3), so no reader sees part of it.
"""

from __future__ import annotations

import json
import os
import tempfile
import urllib.parse

from opencleanrooms import objstore
from opencleanrooms.results import (
    LocalDestination,
    ResultDestination,
    ResultWriteError,
    S3Destination,
    _BUCKET,
    _QUERY_ID,
    result_key_prefix,
)

LOG_FILE = "events.jsonl"
CONTENT_TYPE = "application/x-ndjson"


def log_export_key(key_prefix: str, collaboration_id: str, query_id: str, export_id: str) -> str:
    """The object key of an export. Raises ValueError for a bad prefix or id."""
    for value in (query_id, export_id):
        if not _QUERY_ID.fullmatch(value or ""):
            raise ValueError(f"id {value!r} is not a valid identifier")
    return f"{result_key_prefix(key_prefix, collaboration_id)}{query_id}/{export_id}/{LOG_FILE}"


def write_log_export(events: list[dict], *, destination: ResultDestination, collaboration_id: str, query_id: str,
                     export_id: str) -> str:
    """Write the events, one JSON object a line; the URI written (s3:// or file://). Raises ResultWriteError for S3
    or disk failures, ValueError for a bad bucket, prefix or id."""
    if destination.bucket and not _BUCKET.fullmatch(destination.bucket):
        raise ValueError(f"bucket {destination.bucket!r} is not a valid S3 bucket name")
    key = log_export_key(destination.key_prefix, collaboration_id, query_id, export_id)
    body = "".join(json.dumps(event, separators=(",", ":"), sort_keys=True) + "\n" for event in events).encode()
    if isinstance(destination, S3Destination):
        return _write_s3(body, destination, key)
    if isinstance(destination, LocalDestination):
        return _write_local(body, destination, key)
    raise TypeError(f"unknown destination {destination!r}")


def _write_local(body: bytes, destination: LocalDestination, key: str) -> str:
    root = os.path.abspath(destination.root)
    path = os.path.join(root, *([destination.bucket] if destination.bucket else []), *key.split("/"))
    if os.path.commonpath([root, path]) != root:  # not reachable given the key's checks; kept as a guard
        raise ValueError("log export path escapes the results directory")
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=os.path.dirname(path))
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(body)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
    except OSError as exc:
        raise ResultWriteError(f"The log could not be written to the server's results directory "
                               f"({exc.strerror or type(exc).__name__})", "INTERNAL_ERROR", retryable=True) from None
    return "file://" + urllib.parse.quote(path)


def _write_s3(body: bytes, destination: S3Destination, key: str) -> str:
    fd, tmp = tempfile.mkstemp(prefix="ocr-log-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(body)
        objstore.put_file(destination.settings, destination.bucket, key, tmp, content_type=CONTENT_TYPE)
    except objstore.ObjectStoreError as exc:
        raise ResultWriteError(exc.message, exc.code, retryable=exc.retryable) from None
    except OSError as exc:
        raise ResultWriteError(f"The log could not be prepared for upload ({exc.strerror or type(exc).__name__})",
                               "INTERNAL_ERROR", retryable=True) from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return f"s3://{destination.bucket}/{key}"
