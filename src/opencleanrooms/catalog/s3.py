"""S3 locations: list the objects a location names and download them into a local cache keyed by ETag.

DuckDB's httpfs extension would have to download itself at run time, so objects are fetched with botocore's S3
client (path-style addressing, any S3-compatible endpoint) and read from local disk. A cached copy is used for as
long as the object's ETag is unchanged; a new ETag downloads the object again and drops the old copy.
"""

from __future__ import annotations

import contextlib
import fnmatch
import functools
import hashlib
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field

from opencleanrooms.catalog.errors import TableUnreadable
from opencleanrooms.catalog.model import has_glob

ENV_PREFIX = "OPENCLEANROOMS_S3_"
_FIELDS = ("endpoint_url", "region", "access_key_id", "secret_access_key", "cache_dir")
_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class S3Settings:
    """How the server reaches S3. No endpoint means AWS's own; no keys means anonymous (unsigned) requests."""

    endpoint_url: str | None = None
    region: str = "us-east-1"
    access_key_id: str | None = None
    secret_access_key: str | None = field(default=None, repr=False)
    cache_dir: str | None = None  # downloaded objects; default: a per-user directory under the system temp dir

    def __post_init__(self) -> None:
        if bool(self.access_key_id) != bool(self.secret_access_key):
            raise ValueError("S3 settings need both access_key_id and secret_access_key, or neither")
        if self.endpoint_url is not None and not re.match(r"https?://[^/\s]+", self.endpoint_url):
            raise ValueError(f"S3 endpoint_url must be an http:// or https:// URL, got {self.endpoint_url!r}")

    @classmethod
    def from_config(cls, config: Mapping[str, object] | None = None, *, data_dir: str | None = None,
                    environ: Mapping[str, str] | None = None) -> S3Settings:
        """From the `[s3]` table of the server's config file, overridden by OPENCLEANROOMS_S3_* environment
        variables (ENDPOINT_URL, REGION, ACCESS_KEY_ID, SECRET_ACCESS_KEY, CACHE_DIR). The cache defaults to
        `<data_dir>/cache/s3`."""
        values = dict(config or {})
        unknown = set(values) - set(_FIELDS)
        if unknown:
            raise ValueError(f"unknown S3 setting(s): {', '.join(sorted(unknown))}")
        environ = os.environ if environ is None else environ
        for name in _FIELDS:
            if environ.get(ENV_PREFIX + name.upper()):
                values[name] = environ[ENV_PREFIX + name.upper()]
        if not values.get("cache_dir") and data_dir:
            values["cache_dir"] = os.path.join(data_dir, "cache", "s3")
        return cls(**{k: (str(v) if v is not None else None) for k, v in values.items()})

    @classmethod
    def from_server_settings(cls, settings, *, environ: Mapping[str, str] | None = None) -> S3Settings:
        """From `opencleanrooms.config.Settings` (its `s3` table, when it has one, and its data dir)."""
        return cls.from_config(getattr(settings, "s3", None) or {}, data_dir=settings.data_dir, environ=environ)

    @property
    def resolved_cache_dir(self) -> str:
        if self.cache_dir:
            return self.cache_dir
        user = getattr(os, "getuid", lambda: "user")()
        return os.path.join(tempfile.gettempdir(), f"opencleanrooms-{user}", "cache", "s3")


@dataclass(frozen=True)
class S3Object:
    bucket: str
    key: str
    etag: str
    size: int

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def split_uri(location: str) -> tuple[str, str]:
    bucket, _, key = location[len("s3://"):].partition("/")
    return bucket, key


def is_hidden(name: str) -> bool:
    """Files Glue and Athena skip: names starting with `_` or `.` (_SUCCESS, .crc files, ...)."""
    return name.startswith(("_", "."))


def list_objects(location: str, settings: S3Settings) -> list[S3Object]:
    """The data objects a location names, sorted by key. Raises TableUnreadable."""
    bucket, key = split_uri(location)
    try:
        client = _client(settings)
    except Exception as exc:  # botocore: bad region name, broken AWS config file, ...
        raise TableUnreadable(f"Cannot read {location}: the server's S3 client could not be set up "
                              f"({type(exc).__name__})") from None
    if has_glob(key):
        directory, _, pattern = key.rpartition("/")
        directory = directory + "/" if directory else ""
        literal = re.split(r"[*?\[]", pattern, maxsplit=1)[0]
        found = _list(client, bucket, directory + literal, location)
        return [o for o in found if "/" not in o.key[len(directory):]
                and fnmatch.fnmatchcase(o.key[len(directory):], pattern) and not is_hidden(o.key[len(directory):])]
    if key and not key.endswith("/"):
        found = _list(client, bucket, key, location)
        exact = [o for o in found if o.key == key]
        if exact:
            return exact
        key += "/"
        found = [o for o in found if o.key.startswith(key)]
    else:
        found = _list(client, bucket, key, location)
    return [o for o in found if not o.key.endswith("/")
            and not any(is_hidden(part) for part in o.key[len(key):].split("/"))]


def fetch(obj: S3Object, settings: S3Settings, display: str) -> str:
    """A local copy of the object (downloaded unless the cache holds this ETag). Raises TableUnreadable."""
    endpoint = settings.endpoint_url or "aws"
    key_dir = os.path.join(settings.resolved_cache_dir,
                           hashlib.sha256(f"{endpoint}\n{obj.bucket}\n{obj.key}".encode()).hexdigest()[:40])
    basename = re.sub(r"[^A-Za-z0-9._-]", "_", obj.key.rsplit("/", 1)[-1])[-100:] or "object"
    name = f"{hashlib.sha256(obj.etag.encode()).hexdigest()[:24]}-{basename}"
    path = os.path.join(key_dir, name)
    if os.path.isfile(path) and os.path.getsize(path) == obj.size:
        return path
    os.makedirs(key_dir, mode=0o700, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=key_dir)
    try:
        with os.fdopen(fd, "wb") as out:
            response = _call(_client(settings).get_object, display, Bucket=obj.bucket, Key=obj.key,
                             IfMatch=obj.etag)
            body = response["Body"]
            try:
                for chunk in iter(lambda: body.read(_CHUNK), b""):
                    out.write(chunk)
            finally:
                body.close()
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    for other in os.listdir(key_dir):  # older versions of this object
        if other != name and not other.startswith(".tmp-"):
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(key_dir, other))
    return path


def _list(client, bucket: str, prefix: str, display: str) -> list[S3Object]:
    objects: list[S3Object] = []
    kwargs = {"Bucket": bucket, "Prefix": prefix}
    while True:
        page = _call(client.list_objects_v2, display, **kwargs)
        for item in page.get("Contents", []):
            objects.append(S3Object(bucket, item["Key"], item.get("ETag", ""), int(item.get("Size", 0))))
        if not page.get("IsTruncated"):
            break
        kwargs["ContinuationToken"] = page["NextContinuationToken"]
    return sorted(objects, key=lambda o: o.key)


# What went wrong in an S3 call, whatever the caller does about it (the catalog: TableUnreadable; results:
# opencleanrooms.objstore.ObjectStoreError).
NO_SUCH_BUCKET = "no_such_bucket"
ACCESS_DENIED = "access_denied"
CHANGED = "changed"  # an If-Match precondition failed
NO_SUCH_KEY = "no_such_key"
UNREACHABLE = "unreachable"
NO_CREDENTIALS = "no_credentials"
TRANSIENT = "transient"  # throttling, timeouts, 5xx
OTHER = "other"

_DENIED_CODES = ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403", "AllAccessDisabled")
_TRANSIENT_CODES = ("SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "RequestTimeTooSkewed",
                    "InternalError", "ServiceUnavailable", "503", "500")


def classify_error(exc: BaseException) -> tuple[str, str] | None:
    """(kind, code) for a failed botocore S3 call, or None when `exc` is not an S3 client failure. `code` is S3's
    error code (or the exception's class name) and is safe to show: never a credential or an endpoint."""
    from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError, NoCredentialsError

    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        code = str(error.get("Code", "")) or str(status)
        if code == "NoSuchBucket":
            return NO_SUCH_BUCKET, code
        if code in _DENIED_CODES:
            return ACCESS_DENIED, code
        if code in ("PreconditionFailed", "412"):
            return CHANGED, code
        if code in ("NoSuchKey", "404"):
            return NO_SUCH_KEY, code
        if code in _TRANSIENT_CODES or (isinstance(status, int) and status >= 500):
            return TRANSIENT, code
        return OTHER, code
    if isinstance(exc, (EndpointConnectionError, ConnectionError)):
        return UNREACHABLE, type(exc).__name__
    if isinstance(exc, NoCredentialsError):
        return NO_CREDENTIALS, type(exc).__name__
    if isinstance(exc, BotoCoreError):
        return TRANSIENT, type(exc).__name__
    return None


def _call(method, display: str, **kwargs):
    try:
        return method(**kwargs)
    except Exception as exc:
        failure = classify_error(exc)
        if failure is None:
            raise
        kind, code = failure
    if kind == NO_SUCH_BUCKET:
        raise TableUnreadable(f"S3 bucket {kwargs['Bucket']} does not exist (location {display})")
    if kind == ACCESS_DENIED:
        raise TableUnreadable(f"S3 denied access to {display} ({code})")
    if kind == CHANGED:
        raise TableUnreadable(f"An object at {display} changed while it was being read; try again")
    if kind == NO_SUCH_KEY:
        raise TableUnreadable(f"An object at {display} disappeared while it was being read")
    if kind == UNREACHABLE:
        raise TableUnreadable(f"Could not connect to the S3 endpoint to read {display}")
    if kind == NO_CREDENTIALS:
        raise TableUnreadable(f"No S3 credentials are configured to read {display}")
    raise TableUnreadable(f"S3 error reading {display}: {code}")


def client(settings: S3Settings):
    """The shared botocore S3 client for these settings (path-style, bounded retries; cached per settings)."""
    return _client(settings)


@functools.lru_cache(maxsize=16)
def _client(settings: S3Settings):
    import botocore.config
    import botocore.session
    from botocore import UNSIGNED

    config = botocore.config.Config(
        s3={"addressing_style": "path"}, connect_timeout=5, read_timeout=60,
        retries={"mode": "standard", "total_max_attempts": 3},
        signature_version=None if settings.access_key_id else UNSIGNED,
    )
    session = botocore.session.get_session()
    return session.create_client(
        "s3", endpoint_url=settings.endpoint_url, region_name=settings.region, config=config,
        aws_access_key_id=settings.access_key_id, aws_secret_access_key=settings.secret_access_key,
    )
