"""The stack's own ceiling: a bare ASGI app on the server's stack (uvicorn + httptools + uvloop) that answers every
request with a JSON body of BENCH_BARE_BODY_BYTES bytes and the same headers as an OpenCleanRooms response.

Run by bench.run as: python -m uvicorn bench.bare_app:app --http httptools --loop uvloop --no-access-log ...
"""

from __future__ import annotations

import os
import uuid

_SIZE = int(os.environ.get("BENCH_BARE_BODY_BYTES", "40000"))
# A JSON object of exactly _SIZE bytes: {"membershipSummaries":"xxxx..."}
_PREFIX, _SUFFIX = b'{"membershipSummaries":"', b'"}'
BODY = _PREFIX + b"x" * max(0, _SIZE - len(_PREFIX) - len(_SUFFIX)) + _SUFFIX
_LENGTH = str(len(BODY)).encode()


async def app(scope, receive, send) -> None:
    if scope["type"] != "http":
        return
    # read the (empty) request body as a real app must
    message = await receive()
    while message.get("more_body"):
        message = await receive()
    await send({
        "type": "http.response.start",
        "status": 200,
        "headers": [(b"x-amzn-RequestId", str(uuid.uuid4()).encode()), (b"Content-Type", b"application/json"),
                    (b"content-length", _LENGTH)],
    })
    await send({"type": "http.response.body", "body": BODY})
