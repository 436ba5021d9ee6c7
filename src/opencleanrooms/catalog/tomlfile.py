"""Catalog files: TOML lists of tables, imported into the store with `opencleanrooms catalog import`. A file may
also list `[[id_namespaces]]` and `[[id_mapping_workflows]]`, the local stand-ins for AWS Entity Resolution
(catalog/entity_resolution.py, docs/id-mapping.md).

```toml
[[tables]]
account_id = "111111111111"
region = "us-east-1"              # optional; default "*", any region
database = "advertiser"
table = "customers"
location = "customers.parquet"    # a path relative to this file, an absolute path, a glob or s3:// URI
format = "parquet"                # optional: parquet | csv; default from the extension
# header = true                   # CSV only (default true)
# delimiter = ","                 # CSV only (default: detected)
```
"""

from __future__ import annotations

import os
import tomllib

from opencleanrooms.catalog import entity_resolution
from opencleanrooms.catalog.errors import InvalidEntry
from opencleanrooms.catalog.model import TableSource, make_source

_KEYS = {"account_id", "region", "database", "table", "location", "format", "header", "delimiter"}
_REQUIRED = ("account_id", "database", "table", "location")


def load_catalog_file(path: str | os.PathLike) -> list[TableSource]:
    """Every table of the file (see load_catalog_entries)."""
    return load_catalog_entries(path)[0]


def load_entity_resolution(data: dict, path: str) -> tuple[list, list]:
    """The file's `[[id_namespaces]]` and `[[id_mapping_workflows]]` (catalog/entity_resolution.py)."""
    found = []
    for key, make in (("id_namespaces", entity_resolution.make_namespace),
                      ("id_mapping_workflows", entity_resolution.make_workflow)):
        entries = data.get(key, [])
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise InvalidEntry(f"{path}: `{key}` must be an array of tables ([[{key}]])")
        items = []
        for number, entry in enumerate(entries, start=1):
            try:
                items.append(make(entry))
            except InvalidEntry as exc:
                raise InvalidEntry(f"{path}: {key} {number}: {exc}") from None
        if len({item.arn for item in items}) != len(items):
            raise InvalidEntry(f"{path}: `{key}` lists an ARN twice")
        found.append(items)
    return found[0], found[1]


def load_catalog_entries(path: str | os.PathLike) -> tuple[list[TableSource], list, list]:
    """Every table of the file, validated; relative locations are resolved against the file's directory.
    Raises InvalidEntry naming the file and the entry."""
    path = os.path.abspath(os.fspath(path))
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise InvalidEntry(f"{path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise InvalidEntry(f"{path}: not valid TOML: {exc}") from None
    extra = set(data) - {"tables", "id_namespaces", "id_mapping_workflows"}
    if extra:
        raise InvalidEntry(f"{path}: unknown key(s) {', '.join(sorted(extra))}; tables go in [[tables]]")
    tables = data.get("tables", [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise InvalidEntry(f"{path}: `tables` must be an array of tables ([[tables]])")
    base_dir = os.path.dirname(path)
    sources: list[TableSource] = []
    seen: set[tuple] = set()
    for number, entry in enumerate(tables, start=1):
        where = f"{path}: table {number}"
        unknown = set(entry) - _KEYS
        if unknown:
            raise InvalidEntry(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
        missing = [key for key in _REQUIRED if key not in entry]
        if missing:
            raise InvalidEntry(f"{where}: missing {', '.join(missing)}")
        for key in ("region", "database", "table", "location", "format", "delimiter"):
            if key in entry and not isinstance(entry[key], str):
                raise InvalidEntry(f"{where}: {key} must be a string")
        try:
            source = make_source(account_id=str(entry["account_id"]), region=entry.get("region"),
                                 database=entry["database"], table=entry["table"], location=entry["location"],
                                 format=entry.get("format"), header=entry.get("header"),
                                 delimiter=entry.get("delimiter"), base_dir=base_dir)
        except InvalidEntry as exc:
            raise InvalidEntry(f"{where}: {exc}") from None
        key = (source.account_id, source.region, source.database, source.table)
        if key in seen:
            raise InvalidEntry(f"{where}: {source.database}.{source.table} of account {source.account_id} "
                               f"(region {source.region}) is listed twice")
        seen.add(key)
        sources.append(source)
    return (sources, *load_entity_resolution(data, path))
