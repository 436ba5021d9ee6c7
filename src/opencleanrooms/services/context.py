"""What a service call gets besides its input: who is calling, where, when, and the server's shared parts."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from opencleanrooms.catalog import S3Settings
    from opencleanrooms.services.pagination import PageTokens
    from opencleanrooms.services.quotas import Quotas
    from opencleanrooms.storage.database import Database


@dataclass(frozen=True)
class RequestContext:
    request_id: str
    account_id: str  # from the verified access key, never from the request
    region: str  # from the verified credential scope
    operation: str
    now: float  # epoch seconds; the single clock reading for the whole call
    db: Database
    tokens: PageTokens
    quotas: Quotas
    s3: S3Settings | None = None  # how the catalog reaches tables at s3:// locations (the server's [s3] settings)
    wake_runner: Callable[[], None] | None = None  # tells this process's query runner that work is waiting
    results_dir: str | None = None  # where results and log exports go when the server has no S3 endpoint
    id_mapping_dir: str | None = None  # where populated ID mapping tables' data is kept (<data_dir>/id-mapping-tables)
