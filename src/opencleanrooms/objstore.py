"""Writing, listing and reading objects on the server's S3 endpoint, for query results.

One S3 client and one error classifier serve the whole server: both live in `catalog.s3` (which reads tables) and
are reused here. Failures become `ObjectStoreError` with a ProtectedQueryError code, a retry hint and a message
that names the bucket or object the member configured, never the endpoint or a credential.
"""

from __future__ import annotations

from dataclasses import dataclass

from opencleanrooms.catalog import s3 as _s3
from opencleanrooms.catalog.s3 import S3Settings
from opencleanrooms.errors import QueryFailure

RESOURCE_NOT_FOUND = "RESOURCE_NOT_FOUND"
RESOURCE_ACCESS_DENIED = "RESOURCE_ACCESS_DENIED"
TRANSIENT_ERROR = "TRANSIENT_ERROR"


class ObjectStoreError(QueryFailure):
    """An S3 call failed. `code`: RESOURCE_NOT_FOUND (no such bucket or object), RESOURCE_ACCESS_DENIED or
    TRANSIENT_ERROR (throttling, timeouts, unreachable endpoint, other S3 errors: worth retrying)."""


@dataclass(frozen=True)
class StoredObject:
    bucket: str
    key: str
    size: int

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def put_file(settings: S3Settings, bucket: str, key: str, path: str, *, content_type: str | None = None) -> None:
    """Upload a local file as one object (a single PUT: readers see the old object or the whole new one)."""
    extra = {"ContentType": content_type} if content_type else {}
    with open(path, "rb") as body:
        _call(settings, "put_object", f"s3://{bucket}/{key}", "write", Bucket=bucket, Key=key, Body=body, **extra)


def list_objects(settings: S3Settings, bucket: str, prefix: str) -> list[StoredObject]:
    """Every object whose key starts with `prefix`, sorted by key."""
    found: list[StoredObject] = []
    kwargs = {"Bucket": bucket, "Prefix": prefix}
    while True:
        page = _call(settings, "list_objects_v2", f"s3://{bucket}/{prefix}", "list", **kwargs)
        found.extend(StoredObject(bucket, item["Key"], int(item.get("Size", 0))) for item in page.get("Contents", []))
        if not page.get("IsTruncated"):
            return sorted(found, key=lambda o: o.key)
        kwargs["ContinuationToken"] = page["NextContinuationToken"]


def get_bytes(settings: S3Settings, bucket: str, key: str) -> bytes:
    response = _call(settings, "get_object", f"s3://{bucket}/{key}", "read", Bucket=bucket, Key=key)
    body = response["Body"]
    try:
        return body.read()
    finally:
        body.close()


def delete_objects(settings: S3Settings, bucket: str, keys: list[str]) -> None:
    for start in range(0, len(keys), 1000):
        batch = keys[start:start + 1000]
        _call(settings, "delete_objects", f"s3://{bucket}/", "delete", Bucket=bucket,
              Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True})


def _call(settings: S3Settings, operation: str, display: str, verb: str, **kwargs):
    try:
        client = _s3.client(settings)
    except Exception as exc:  # botocore: bad region name, broken config
        raise ObjectStoreError(f"Cannot {verb} {display}: the server's S3 client could not be set up "
                               f"({type(exc).__name__})", TRANSIENT_ERROR, retryable=False) from None
    try:
        return getattr(client, operation)(**kwargs)
    except Exception as exc:
        failure = _s3.classify_error(exc)
        if failure is None:
            raise
        kind, code = failure
    bucket = kwargs.get("Bucket", "")
    if kind == _s3.NO_SUCH_BUCKET:
        raise ObjectStoreError(f"S3 bucket {bucket} does not exist", RESOURCE_NOT_FOUND, retryable=False)
    if kind == _s3.NO_SUCH_KEY:
        raise ObjectStoreError(f"{display} does not exist", RESOURCE_NOT_FOUND, retryable=False)
    if kind in (_s3.ACCESS_DENIED, _s3.NO_CREDENTIALS):
        raise ObjectStoreError(f"S3 denied access to {display} ({code})", RESOURCE_ACCESS_DENIED, retryable=False)
    if kind == _s3.UNREACHABLE:
        raise ObjectStoreError(f"Could not connect to the S3 endpoint to {verb} {display}", TRANSIENT_ERROR,
                               retryable=True)
    raise ObjectStoreError(f"S3 error trying to {verb} {display}: {code}", TRANSIENT_ERROR, retryable=True)
