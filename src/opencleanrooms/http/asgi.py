"""A minimal ASGI adapter: reads the request as sent (raw path, raw query, body within a size limit), hands it to
the pipeline, and writes the response. No framework: routing must see the still-encoded path."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from opencleanrooms.errors import ServiceError
from opencleanrooms.pipeline import Pipeline


class AsgiApp:
    def __init__(self, pipeline: Pipeline, *, max_body_bytes: int, on_startup=None, on_shutdown=None,
                 threads: int = 8) -> None:
        self._pipeline = pipeline
        self._max_body = max_body_bytes
        self._on_startup = on_startup
        self._on_shutdown = on_shutdown
        # Requests are handled on these threads, never on the event loop: a call that reads a table's files or
        # checks a query must not hold up the others.
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="request")

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        headers: dict[str, str] = {}
        for name, value in scope["headers"]:
            key = name.decode("latin-1").lower()
            text = value.decode("latin-1")
            headers[key] = f"{headers[key]},{text}" if key in headers else text
        body = await self._read_body(receive, headers)
        if body is None:
            response = self._pipeline.error_response(ServiceError(
                "RequestEntityTooLargeException",
                f"Request body exceeds the limit of {self._max_body} bytes.", status=413))
        else:
            raw_path = scope.get("raw_path") or scope["path"].encode("utf-8")
            response = await asyncio.get_running_loop().run_in_executor(
                self._executor, self._pipeline.handle, scope["method"], raw_path.decode("latin-1").split("?", 1)[0],
                scope.get("query_string", b"").decode("latin-1"), headers, body,
            )
        await send({
            "type": "http.response.start",
            "status": response.status,
            "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers]
            + [(b"content-length", str(len(response.body)).encode())],
        })
        await send({"type": "http.response.body", "body": response.body})

    async def _read_body(self, receive, headers: dict[str, str]) -> bytes | None:
        """The whole body, or None when it is larger than allowed (checked before reading when declared)."""
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self._max_body:
            return None
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self._max_body:
                return None
            chunks.append(chunk)
            if not message.get("more_body"):
                break
        return b"".join(chunks)

    async def _lifespan(self, receive, send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if self._on_startup:
                    self._on_startup()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._on_shutdown:
                    await asyncio.get_running_loop().run_in_executor(None, self._on_shutdown)
                self._executor.shutdown(wait=False)
                await send({"type": "lifespan.shutdown.complete"})
                return
