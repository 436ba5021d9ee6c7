"""Opaque, signed page tokens.

A token holds the keyset position of the last item served and an HMAC over that position and what the token is
bound to (operation, region, caller account, filters). The key is shared by all server processes through the
database, so a token is valid in any process and after restarts, cannot be forged or moved to another caller or
filter, and stays valid after the item it points at is deleted.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from opencleanrooms.encoded import EncodedJson, encode
from opencleanrooms.errors import ServiceError
from opencleanrooms.services.errors import validation

if TYPE_CHECKING:
    import sqlalchemy as sa

    from opencleanrooms.services.context import RequestContext

DEFAULT_PAGE_SIZE = 100


class PageTokens:
    def __init__(self, key: bytes) -> None:
        self._key = key

    def encode(self, binding: tuple, position: int) -> str:
        payload = _b64(json.dumps([1, position], separators=(",", ":")).encode())
        return f"{payload}.{self._mac(binding, payload)}"

    def decode(self, binding: tuple, token: str | None) -> int | None:
        """The position a token resumes after; None for the first page. Bad tokens are ValidationException."""
        if token is None:
            return None
        payload, _, mac = token.partition(".")
        if not payload or not hmac.compare_digest(mac, self._mac(binding, payload)):
            raise invalid_token()
        try:
            version, position = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        except (ValueError, TypeError):
            raise invalid_token() from None
        if version != 1 or not isinstance(position, int):
            raise invalid_token()
        return position

    def _mac(self, binding: tuple, payload: str) -> str:
        message = json.dumps([list(map(str, binding)), payload], separators=(",", ":")).encode()
        return _b64(hmac.new(self._key, message, hashlib.sha256).digest())


def list_page(ctx: RequestContext, params: dict, result_key: str, filters: tuple,
              fetch: Callable[[sa.Connection, int | None, int], tuple[list, int | None]],
              render: Callable[[Any], dict] | None = None) -> EncodedJson:
    """One page of a list operation: resume from the caller's token, fetch in a read transaction, sign the next.

    `filters` are the request's filter values; the token is bound to them and to the operation, region and caller.
    Rows are rendered to summaries by `render`, or, without it, are (seq, pre-encoded summary) pairs.
    """
    binding = (ctx.operation, ctx.region, ctx.account_id, *filters)
    after = ctx.tokens.decode(binding, params.get("nextToken"))
    with ctx.db.read() as conn:
        rows, last = fetch(conn, after, params.get("maxResults") or DEFAULT_PAGE_SIZE)
    items = [row[1] for row in rows] if render is None else [encode(render(row)) for row in rows]
    tail = "}" if last is None else f',"nextToken":"{ctx.tokens.encode(binding, last)}"}}'
    return EncodedJson(f'{{"{result_key}":[{",".join(items)}]{tail}'.encode())


def invalid_token() -> ServiceError:
    return validation("The nextToken is invalid or does not belong to this request.", field="nextToken",
                      field_message="Invalid pagination token")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
