"""The catalog's errors. Plain exceptions: the service layer turns them into Clean Rooms errors.

Messages are meant to be shown to the table's owner: they name the table and the location as it was configured,
never the server's own paths (such as the S3 download cache) or any credential.
"""

from __future__ import annotations


class CatalogError(Exception):
    """Base class of every catalog error."""


class InvalidEntry(CatalogError, ValueError):
    """A catalog entry (from the CLI, a TOML file or code) is malformed: bad account id, name, location or format."""


class TableNotFound(CatalogError):
    """No catalog entry for (account, region, database, table)."""

    def __init__(self, account_id: str, database: str, table: str) -> None:
        self.account_id, self.database, self.table = account_id, database, table
        super().__init__(f"Table {database}.{table} not found in the catalog of account {account_id}")


class TableUnreadable(CatalogError):
    """The entry exists but its data cannot be read: no files, unknown format, unreadable file, S3 error."""
