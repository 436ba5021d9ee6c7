"""From a catalog entry to its files, its schema (read with DuckDB, cached) and a DuckDB scan of its data.

A schema read binds a `read_parquet`/`read_csv` relation over the table's first file (sorted by path or key): that
reads the Parquet footer or sniffs a sample of the CSV, never the whole data. Schemas are cached in the process,
keyed by the format, the CSV options and the identity of every file of the table ((path, size, mtime, inode)
locally, (bucket, key, ETag) on S3), so any change to the table's files is seen on the next read.
"""

from __future__ import annotations

import collections
import glob
import os
import threading
from dataclasses import dataclass

from opencleanrooms.catalog import s3
from opencleanrooms.catalog.errors import TableUnreadable
from opencleanrooms.catalog.model import Column, TableSource, format_for_name, has_glob
from opencleanrooms.catalog.glue_types import UnsupportedType, glue_type

_DUCKDB_CONFIG = {"autoinstall_known_extensions": False, "autoload_known_extensions": False}


@dataclass(frozen=True)
class DataFile:
    """One file of a table: local, or an S3 object not downloaded yet."""

    identity: tuple
    name: str  # file name or key, for the format
    display: str  # how messages name it: the local path or the s3:// URI
    local_path: str | None = None
    s3_object: s3.S3Object | None = None


@dataclass(frozen=True)
class Scan:
    """Local files ready for DuckDB, and the table function that reads them."""

    format: str
    files: tuple[str, ...]
    header: bool = True
    delimiter: str | None = None
    names: tuple[str, ...] | None = None  # column names for a CSV without a header line

    def sql(self) -> str:
        """A DuckDB table expression, e.g. `read_parquet(['/a.parquet'], hive_partitioning=false)`."""
        files = "[" + ", ".join(_literal(path) for path in self.files) + "]"
        if self.format == "parquet":
            return f"read_parquet({files}, hive_partitioning=false)"
        args = [files, f"header={'true' if self.header else 'false'}", "hive_partitioning=false"]
        if self.delimiter is not None:
            args.append(f"delim={_literal(self.delimiter)}")
        if self.names is not None:
            args.append("names=[" + ", ".join(_literal(name) for name in self.names) + "]")
        return f"read_csv({', '.join(args)})"


class SchemaCache:
    """A small LRU of table schemas, safe to share between threads."""

    def __init__(self, max_entries: int = 512) -> None:
        self.max_entries = max_entries
        self.hits = 0
        self.misses = 0
        self._entries: collections.OrderedDict[tuple, tuple[Column, ...]] = collections.OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple) -> tuple[Column, ...] | None:
        with self._lock:
            value = self._entries.get(key)
            if value is None:
                self.misses += 1
            else:
                self.hits += 1
                self._entries.move_to_end(key)
            return value

    def put(self, key: tuple, value: tuple[Column, ...]) -> None:
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


DEFAULT_CACHE = SchemaCache()
_DEFAULT = object()


def list_files(source: TableSource, s3_settings: s3.S3Settings | None = None) -> list[DataFile]:
    """The table's data files, sorted; raises TableUnreadable when there are none or they cannot be listed."""
    if source.is_s3:
        settings = _require_s3(source, s3_settings)
        endpoint = settings.endpoint_url or "aws"
        files = [DataFile(("s3", endpoint, o.bucket, o.key, o.etag), o.key, o.uri, s3_object=o)
                 for o in s3.list_objects(source.location, settings)]
    else:
        files = [DataFile(_stat_identity(path, source), path, path, local_path=path)
                 for path in _local_paths(source.location)]
    if not files:
        raise TableUnreadable(f"No data files found at {source.location}")
    return files


def table_format(source: TableSource, files: list[DataFile]) -> str:
    """The entry's format, else the one every file's extension agrees on."""
    if source.format:
        return source.format
    formats = {format_for_name(f.name) for f in files}
    if len(formats) != 1 or None in formats:
        raise TableUnreadable(f"Cannot tell the format of the data at {source.location} from its file names "
                              f"(supported: .parquet, .csv); set the table's format to parquet or csv")
    return formats.pop()


def read_schema(source: TableSource, s3_settings: s3.S3Settings | None = None, *,
                cache: SchemaCache | None = _DEFAULT) -> list[Column]:  # type: ignore[assignment]
    """The table's columns with Glue type names; names in lower case, as Glue reports them. Raises
    TableUnreadable. `cache=None` reads the files again."""
    cache = DEFAULT_CACHE if cache is _DEFAULT else cache
    files = list_files(source, s3_settings)
    fmt = table_format(source, files)
    key = (fmt, source.header, source.delimiter, tuple(f.identity for f in files))
    if cache is not None and (cached := cache.get(key)) is not None:
        return list(cached)
    first = files[0]
    local = _localize(first, source, s3_settings)
    columns = tuple(_describe(source, fmt, [local], {local: first.display}))
    if cache is not None:
        cache.put(key, columns)
    return list(columns)


def prepare_scan(source: TableSource, s3_settings: s3.S3Settings | None = None) -> Scan:
    """Every file of the table on local disk (S3 objects downloaded, or taken from the cache) and the DuckDB
    table function reading them, with the column names `read_schema` reports for a CSV without a header."""
    files = list_files(source, s3_settings)
    fmt = table_format(source, files)
    local = tuple(_localize(f, source, s3_settings) for f in files)
    names = None
    if fmt == "csv" and not source.header:
        names = tuple(c.name for c in read_schema(source, s3_settings))
    return Scan(format=fmt, files=local, header=source.header, delimiter=source.delimiter, names=names)


def locate_scan(source: TableSource, s3_settings: s3.S3Settings | None = None) -> Scan:
    """Like `prepare_scan`, but the files are named where they live (local paths, `s3://` URIs) and nothing is
    downloaded: for an engine that reads them itself (Spark). A CSV without a set delimiter gets the one DuckDB's
    sniffer finds in the first file, so that both engines split lines alike."""
    files = list_files(source, s3_settings)
    fmt = table_format(source, files)
    names, delimiter = None, source.delimiter
    if fmt == "csv":
        if not source.header:
            names = tuple(c.name for c in read_schema(source, s3_settings))
        if delimiter is None:
            delimiter = sniff_delimiter(_localize(files[0], source, s3_settings), files[0].display)
    return Scan(format=fmt, files=tuple(f.display for f in files), header=source.header, delimiter=delimiter,
                names=names)


def sniff_delimiter(path: str, display: str) -> str:
    """The delimiter DuckDB's CSV sniffer finds in a local file (what `read_schema` splits lines with)."""
    import duckdb

    try:
        with duckdb.connect(":memory:", config=_DUCKDB_CONFIG) as con:
            row = con.execute("SELECT Delimiter FROM sniff_csv(?)", [path]).fetchone()
    except duckdb.Error:
        raise TableUnreadable(f"Could not read csv data at {display}") from None
    return row[0] if row and row[0] else ","


def _describe(source: TableSource, fmt: str, paths: list[str], displays: dict[str, str]) -> list[Column]:
    import duckdb

    scan = Scan(format=fmt, files=tuple(paths), header=source.header, delimiter=source.delimiter)
    if fmt == "csv":
        _refuse_blank_csv(paths[0], displays.get(paths[0], paths[0]))
    try:
        with duckdb.connect(":memory:", config=_DUCKDB_CONFIG) as con:
            relation = con.sql(f"SELECT * FROM {scan.sql()}")
            names, types = list(relation.columns), list(relation.types)
            # DuckDB makes up a VARCHAR `column0` for an empty file and VARCHARs for a header alone: without a
            # row there are no types to read, so such a table is refused rather than served with guessed ones.
            if fmt == "csv" and not relation.limit(1).fetchall():
                display = displays.get(paths[0], paths[0])
                if source.header:
                    raise TableUnreadable(f"CSV file {display} has a header line but no data rows: column types "
                                          f"are read from the data, so it needs at least one row")
                raise TableUnreadable(f"CSV file {display} is empty: it needs at least one row")
    except duckdb.Error as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        for path, display in displays.items():
            reason = reason.replace(path, display)
        raise TableUnreadable(f"Could not read {fmt} data at {source.location}: {reason}") from None
    if fmt == "csv" and not source.header:
        names = [f"col{i}" for i in range(len(names))]  # as a Glue crawler names headerless CSV columns
    columns, seen = [], set()
    for name, duck_type in zip(names, types):
        lowered = name.lower()
        if lowered in seen:
            raise TableUnreadable(f"The data at {source.location} has two columns named {lowered!r} "
                                  f"(column names are case-insensitive)")
        seen.add(lowered)
        try:
            columns.append(Column(lowered, glue_type(duck_type)))
        except UnsupportedType as exc:
            raise TableUnreadable(f"Column {name!r} of the data at {source.location} has type {exc}, "
                                  f"which has no AWS Glue equivalent") from None
    return columns


def _refuse_blank_csv(path: str, display: str) -> None:
    """An empty (or blank-lines-only) CSV file, refused by name before DuckDB invents a `column0` for it."""
    if path.endswith((".gz", ".zst")):
        return  # compressed: the row check after binding catches it
    try:
        with open(path, "rb") as fh:
            head = fh.read(65536)
    except OSError:
        return  # DuckDB's own error says why
    if not head.strip():
        raise TableUnreadable(f"CSV file {display} is empty: it needs a header line and at least one row")


def _local_paths(location: str) -> list[str]:
    try:
        if has_glob(location):
            paths = [p for p in glob.glob(location, recursive=True)
                     if os.path.isfile(p) and not s3.is_hidden(os.path.basename(p))]
        elif os.path.isdir(location):
            paths = []
            for root, dirs, names in os.walk(location):
                dirs[:] = [d for d in dirs if not s3.is_hidden(d)]
                paths.extend(os.path.join(root, n) for n in names
                             if not s3.is_hidden(n) and os.path.isfile(os.path.join(root, n)))
        elif os.path.isfile(location):
            paths = [location]
        else:
            raise TableUnreadable(f"Table location {location} does not exist")
    except OSError as exc:
        raise TableUnreadable(f"Cannot list the files at {location}: {exc.strerror}") from None
    return sorted(paths)


def _stat_identity(path: str, source: TableSource) -> tuple:
    try:
        st = os.stat(path)
    except OSError as exc:
        raise TableUnreadable(f"Cannot read the files at {source.location}: {exc.strerror}") from None
    return ("file", path, st.st_size, st.st_mtime_ns, st.st_ino)


def _localize(data_file: DataFile, source: TableSource, s3_settings: s3.S3Settings | None) -> str:
    if data_file.local_path is not None:
        return data_file.local_path
    try:
        return s3.fetch(data_file.s3_object, _require_s3(source, s3_settings), source.location)
    except OSError as exc:  # the server's cache directory: not the owner's business, so no path in the message
        raise TableUnreadable(f"Could not keep a local copy of {data_file.display}: {exc.strerror}") from None


def _require_s3(source: TableSource, s3_settings: s3.S3Settings | None) -> s3.S3Settings:
    if s3_settings is None:
        raise TableUnreadable(f"Cannot read {source.location}: this server has no S3 settings")
    return s3_settings


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
