"""Query results: written as CSV (with a header row) or Parquet to S3 or to the server's local results directory.

Layout. AWS documents only that `ProtectedQueryS3Output.location` is "the S3 location of the result" and that
results go under the configured bucket and keyPrefix; it publishes no example of the value. We write

    <keyPrefix>/<protectedQueryId>/part-00000.csv, part-00001.csv, ...   (multiple files)
    <keyPrefix>/<protectedQueryId>/result.csv                            (singleFileOutput)

(`.parquet` for PARQUET; an empty keyPrefix puts the query's directory at the bucket's root; slashes around the
prefix are dropped) and report as `location` the query's directory, `s3://<bucket>/<keyPrefix>/<queryId>/`, for
multiple files, and the object's own URI for a single file. Every object below that location is a result file
(no `_SUCCESS` marker, no manifest), because the one documented consumer of `location`,
`awswrangler.cleanrooms.read_sql_query`, passes it unchanged to `wr.s3.read_parquet(path=location)`, which lists
every object whose key starts with the location's key and reads them all as Parquet, and with `keep_files=False`
deletes them with `wr.s3.delete_objects(path=location)` (the same prefix listing). A directory location with a
trailing slash keeps another query's objects (`<queryId>-...`) out of that listing; both forms work with it.

The local destination mirrors the S3 layout below the server's results directory,
`<root>/<bucket>/<keyPrefix>/<queryId>/...`, and reports a `file://` URI (RFC 8089, absolute path), the form
`pyarrow`, `pandas`, DuckDB and `aws s3 cp` understand.

Each file is written under a temporary name (local) or by a single PUT (S3), so readers never see part of a file;
files of an earlier attempt of the same query that this attempt did not write are deleted afterwards. S3 failures
raise `ResultWriteError` with code RESOURCE_NOT_FOUND (no such bucket), RESOURCE_ACCESS_DENIED or TRANSIENT_ERROR
(retryable). This package imports nothing of the service, HTTP, protocol or storage layers.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import tempfile
import urllib.parse
from dataclasses import dataclass
from typing import Union

import pyarrow as pa

from opencleanrooms import objstore
from opencleanrooms.catalog.s3 import S3Settings
from opencleanrooms.errors import QueryFailure
from opencleanrooms.results.writers import CONTENT_TYPES, EXTENSIONS, FORMATS, check_format, split, write_file

DEFAULT_MAX_ROWS_PER_FILE = 1_000_000
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]")
_QUERY_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_\-]{0,127}")
_PREFIX_SEGMENT = re.compile(r"[\w!.=*\-]+")


class ResultWriteError(QueryFailure):
    """Results could not be written or read."""


@dataclass(frozen=True)
class S3Destination:
    bucket: str
    key_prefix: str
    settings: S3Settings


@dataclass(frozen=True)
class LocalDestination:
    """The server's local results directory; bucket and key prefix are the ones the query's result configuration
    names (an empty bucket leaves that level out)."""

    root: str
    bucket: str = ""
    key_prefix: str = ""


ResultDestination = Union[S3Destination, LocalDestination]


def result_key_prefix(key_prefix: str, query_id: str) -> str:
    """`<keyPrefix>/<queryId>/` with the prefix's surrounding slashes and empty segments dropped. Raises
    ValueError for `.`/`..` segments or characters outside AWS's keyPrefix pattern."""
    if not _QUERY_ID.fullmatch(query_id or ""):
        raise ValueError(f"query id {query_id!r} is not a valid identifier")
    segments = [s for s in (key_prefix or "").split("/") if s]
    for segment in segments:
        if segment in (".", "..") or not _PREFIX_SEGMENT.fullmatch(segment):
            raise ValueError(f"key prefix {key_prefix!r} is not valid")
    return "/".join([*segments, query_id]) + "/"


def write_result(table: pa.Table, *, fmt: str, single_file: bool, destination: ResultDestination, query_id: str,
                 max_rows_per_file: int = DEFAULT_MAX_ROWS_PER_FILE) -> str:
    """Write the result's files; the location to report (see the module docstring). Raises ResultWriteError for
    S3 or disk failures, ValueError for a bad format, bucket, prefix or query id."""
    check_format(fmt)
    if max_rows_per_file < 1:
        raise ValueError("max_rows_per_file must be positive")
    bucket = destination.bucket if isinstance(destination, S3Destination) else None
    parts = split(table, single_file=single_file, max_rows_per_file=max_rows_per_file)
    ext = EXTENSIONS[fmt]
    names = [f"result{ext}"] if single_file else [f"part-{i:05d}{ext}" for i in range(len(parts))]
    if isinstance(destination, S3Destination):
        if not _BUCKET.fullmatch(bucket or ""):
            raise ValueError(f"bucket {bucket!r} is not a valid S3 bucket name")
        prefix = result_key_prefix(destination.key_prefix, query_id)
        _write_s3(parts, names, fmt, destination, prefix)
        base = f"s3://{bucket}/{prefix}"
    elif isinstance(destination, LocalDestination):
        directory = local_directory(destination, query_id)
        _write_local(parts, names, fmt, directory)
        base = "file://" + urllib.parse.quote(directory.rstrip("/") + "/")
    else:
        raise TypeError(f"unknown result destination {destination!r}")
    return base + names[0] if single_file else base


def local_directory(destination: LocalDestination, query_id: str) -> str:
    """`<root>/<bucket>/<keyPrefix>/<queryId>`, always inside root."""
    if destination.bucket and not _BUCKET.fullmatch(destination.bucket):
        raise ValueError(f"bucket {destination.bucket!r} is not a valid S3 bucket name")
    root = os.path.abspath(destination.root)
    segments = result_key_prefix(destination.key_prefix, query_id).rstrip("/").split("/")
    path = os.path.join(root, *([destination.bucket] if destination.bucket else []), *segments)
    if os.path.commonpath([root, path]) != root:  # not reachable given the checks above; kept as a guard
        raise ValueError("result path escapes the results directory")
    return path


def _write_local(parts: list[pa.Table], names: list[str], fmt: str, directory: str) -> None:
    try:
        os.makedirs(directory, exist_ok=True)
        for part, name in zip(parts, names):
            write_file(part, fmt, os.path.join(directory, name))
        for stale in set(os.listdir(directory)) - set(names):  # files of an earlier attempt
            path = os.path.join(directory, stale)
            if os.path.isdir(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    os.unlink(path)
    except OSError as exc:
        raise ResultWriteError(f"The result could not be written to the server's results directory "
                               f"({exc.strerror or type(exc).__name__})", "INTERNAL_ERROR",
                               retryable=True) from None


def _write_s3(parts: list[pa.Table], names: list[str], fmt: str, destination: S3Destination, prefix: str) -> None:
    settings = destination.settings
    work = tempfile.mkdtemp(prefix="ocr-result-")
    try:
        for part, name in zip(parts, names):
            path = os.path.join(work, name)
            write_file(part, fmt, path)
            objstore.put_file(settings, destination.bucket, prefix + name, path, content_type=CONTENT_TYPES[fmt])
            os.unlink(path)
        written = {prefix + name for name in names}
        stale = [o.key for o in objstore.list_objects(settings, destination.bucket, prefix) if o.key not in written]
        if stale:
            objstore.delete_objects(settings, destination.bucket, stale)
    except objstore.ObjectStoreError as exc:
        raise ResultWriteError(exc.message, exc.code, retryable=exc.retryable) from None
    except OSError as exc:
        raise ResultWriteError(f"The result could not be prepared for upload ({exc.strerror or type(exc).__name__})",
                               "INTERNAL_ERROR", retryable=True) from None
    finally:
        shutil.rmtree(work, ignore_errors=True)


def delete_local_result(location: str, root: str) -> None:
    """Delete the files at a file:// location this server wrote below `root` (the results directory); a location
    elsewhere is left alone. Missing files are no error."""
    if not location.startswith("file://"):
        return
    path = os.path.abspath(urllib.parse.unquote(location[len("file://"):]))
    root = os.path.abspath(root)
    if path == root or os.path.commonpath([root, path]) != root:
        return
    if os.path.isdir(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            os.unlink(path)


def read_result(location: str, settings: S3Settings | None = None) -> pa.Table:
    """The result at a reported location (s3:// or file://; a directory or one file), as one Arrow table."""
    if location.startswith("s3://"):
        if settings is None:
            raise ResultWriteError("This server has no S3 settings to read the result", "INTERNAL_ERROR")
        bucket, _, key = location[len("s3://"):].partition("/")
        try:
            objects = [o for o in objstore.list_objects(settings, bucket, key) if _is_result_name(o.key, key)]
            blobs = [(o.key, objstore.get_bytes(settings, bucket, o.key)) for o in objects]
        except objstore.ObjectStoreError as exc:
            raise ResultWriteError(exc.message, exc.code, retryable=exc.retryable) from None
    elif location.startswith("file://"):
        path = urllib.parse.unquote(location[len("file://"):])
        if os.path.isdir(path):
            files = sorted(os.path.join(path, n) for n in os.listdir(path) if not n.startswith((".", "_")))
        elif os.path.isfile(path):
            files = [path]
        else:
            raise ResultWriteError(f"No result at {location}", "RESOURCE_NOT_FOUND")
        blobs = []
        for file in files:
            with open(file, "rb") as handle:
                blobs.append((file, handle.read()))
    else:
        raise ValueError(f"result locations are s3:// or file:// URIs, got {location!r}")
    if not blobs:
        raise ResultWriteError(f"No result files at {location}", "RESOURCE_NOT_FOUND")
    tables = [_read_blob(name, data) for name, data in blobs]
    return pa.concat_tables(tables, promote_options="permissive") if len(tables) > 1 else tables[0]


def _is_result_name(key: str, prefix: str) -> bool:
    rest = key[len(prefix):] if key.startswith(prefix) else key
    return not key.endswith("/") and not any(p.startswith((".", "_")) for p in rest.split("/") if p)


def _read_blob(name: str, data: bytes) -> pa.Table:
    if name.endswith(".parquet"):
        import pyarrow.parquet as pq

        return pq.read_table(io.BytesIO(data))
    import pyarrow.csv as pacsv

    # our CSV writes NULL as an empty field and an empty string as "": read them back apart
    options = pacsv.ConvertOptions(strings_can_be_null=True, quoted_strings_can_be_null=False)
    return pacsv.read_csv(io.BytesIO(data), convert_options=options)


__all__ = [
    "DEFAULT_MAX_ROWS_PER_FILE", "FORMATS", "LocalDestination", "ResultDestination",
    "ResultWriteError", "S3Destination", "delete_local_result", "local_directory", "read_result", "result_key_prefix",
    "write_result",
]
