"""A light HTTP/1.1 load generator: replays pre-signed request bytes over keep-alive connections.

One event loop (uvloop when installed, else asyncio), one `asyncio.Protocol` per connection, no coroutines or HTTP
library on the hot path: a connection writes a request, parses the status line and Content-Length of the answer,
and writes the next request as soon as the body is complete. Each connection has at most one request in flight
(no pipelining), so `concurrency` connections mean at most `concurrency` requests in flight.

The client's own CPU time per request is measured and reported with every batch (`client_cpu_ms_per_req`), and a
batch against a server that only returns canned bytes (bench/canned_server.py) shows the generator's ceiling.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is a dependency of opencleanrooms on every platform we run on
    uvloop = None


@dataclass
class BatchResult:
    requests: int = 0
    elapsed: float = 0.0  # seconds from the first request written to the last response read
    latencies: list[float] = field(default_factory=list)  # seconds, one per response
    statuses: Counter = field(default_factory=Counter)
    bodies: dict[int, bytes] = field(default_factory=dict)  # request index -> response body (keep_bodies only)
    server_cpu: float = 0.0  # seconds of server CPU (process tree) during the batch
    client_cpu: float = 0.0  # seconds of this process's CPU during the batch
    reconnects: int = 0
    response_bytes: int = 0  # body size of the last response

    def merge(self, other: BatchResult) -> BatchResult:
        self.requests += other.requests
        self.elapsed += other.elapsed
        self.latencies += other.latencies
        self.statuses += other.statuses
        self.bodies.update(other.bodies)
        self.server_cpu += other.server_cpu
        self.client_cpu += other.client_cpu
        self.reconnects += other.reconnects
        self.response_bytes = other.response_bytes or self.response_bytes
        return self

    def summary(self) -> dict:
        lat = sorted(self.latencies)
        n = self.requests
        return {
            "requests": n,
            "elapsed_s": round(self.elapsed, 4),
            "rps": n / self.elapsed if self.elapsed else None,
            "mean_ms": sum(lat) / len(lat) * 1000 if lat else None,
            "p50_ms": _percentile(lat, 50) * 1000 if lat else None,
            "p99_ms": _percentile(lat, 99) * 1000 if lat else None,
            "max_ms": lat[-1] * 1000 if lat else None,
            "server_cpu_ms_per_req": self.server_cpu * 1000 / n if n else None,
            "client_cpu_ms_per_req": self.client_cpu * 1000 / n if n else None,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "reconnects": self.reconnects,
            "response_bytes": self.response_bytes,
        }


def _percentile(sorted_values: list[float], pct: float) -> float:
    """Nearest-rank percentile."""
    k = max(0, min(len(sorted_values) - 1, int(round(pct / 100 * len(sorted_values) + 0.5)) - 1))
    return sorted_values[k]


class _Run:
    def __init__(self, requests: Sequence[bytes], *, once: bool, max_requests: int | None, deadline_s: float | None,
                 keep_bodies: bool) -> None:
        self.requests = requests
        self.once = once
        self.limit = len(requests) if once else max_requests
        self.deadline_s = deadline_s
        self.keep_bodies = keep_bodies
        self.next_index = 0
        self.in_flight = 0
        self.result = BatchResult()
        self.deadline = float("inf")
        self.done: asyncio.Future | None = None
        self.error: BaseException | None = None

    def take(self) -> int | None:
        if self.error is not None:
            return None
        if self.limit is not None and self.next_index >= self.limit:
            return None
        if time.perf_counter() >= self.deadline:
            return None
        index = self.next_index
        self.next_index += 1
        return index

    def finished_one(self) -> None:
        if self.in_flight == 0 and self.done is not None and not self.done.done():
            self.done.set_result(None)


class _Connection(asyncio.Protocol):
    def __init__(self, run: _Run, reopen: Callable[[int], None]) -> None:
        self.run = run
        self.reopen = reopen
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.need = -1
        self.body_start = 0
        self.status = 0
        self.index = -1
        self.sent_at = 0.0
        self.closing = False
        self.server_closes = False
        self.pending = False  # a request written and not yet answered

    def connection_made(self, transport) -> None:
        self.transport = transport

    def send_next(self) -> None:
        index = self.run.take()
        if index is None:
            self.closing = True
            self.transport.close()
            return
        self.index = index
        self.pending = True
        self.run.in_flight += 1
        requests = self.run.requests
        self.sent_at = time.perf_counter()
        self.transport.write(requests[index % len(requests)])

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        if self.need < 0:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buf[:end]).lower()
            self.status = int(head[9:12])
            pos = head.find(b"\r\ncontent-length:")
            if pos < 0:
                self._fail(RuntimeError(f"response without Content-Length: {head[:200]!r}"))
                return
            stop = head.find(b"\r\n", pos + 2)
            self.need = end + 4 + int(head[pos + 17:stop if stop >= 0 else None])
            self.body_start = end + 4
            self.server_closes = b"\r\nconnection: close" in head
        if len(buf) < self.need:
            return
        now = time.perf_counter()
        run = self.run
        result = run.result
        result.requests += 1
        result.latencies.append(now - self.sent_at)
        result.statuses[self.status] += 1
        result.response_bytes = self.need - self.body_start
        if run.keep_bodies:
            result.bodies[self.index] = bytes(buf[self.body_start:self.need])
        del buf[:self.need]
        self.need = -1
        self.pending = False
        run.in_flight -= 1
        if self.server_closes:  # the server will close this connection; carry on over a new one
            self.closing = True
            result.reconnects += 1
            self.transport.close()
            self.reopen(1)
            return
        self.send_next()
        run.finished_one()

    def connection_lost(self, exc) -> None:
        if not self.closing:
            self._fail(exc or ConnectionError("server closed the connection mid-request"))
        self.run.finished_one()

    def _fail(self, exc: BaseException) -> None:
        run = self.run
        if run.error is None:
            run.error = exc
        self.closing = True
        if self.pending:
            self.pending = False
            run.in_flight -= 1
        if self.transport is not None:
            self.transport.close()
        run.finished_one()


def new_loop() -> asyncio.AbstractEventLoop:
    return uvloop.new_event_loop() if uvloop is not None else asyncio.new_event_loop()


def run_batch(host: str, port: int, requests: Sequence[bytes], *, concurrency: int = 1,
              duration: float | None = None, max_requests: int | None = None, once: bool = False,
              keep_bodies: bool = False, server_cpu: Callable[[], float] | None = None) -> BatchResult:
    """Replay `requests` (cycling through them, or each exactly once with `once`) on `concurrency` keep-alive
    connections until `duration` seconds have passed or `max_requests` were answered, whichever comes first.

    `server_cpu` returns the server's cumulative CPU seconds; it is read right before the first request is
    written and right after the last response is read.
    """
    if duration is None and max_requests is None and not once:
        raise ValueError("give a duration, a request count or once=True")
    run = _Run(requests, once=once, max_requests=max_requests, deadline_s=duration, keep_bodies=keep_bodies)
    loop = new_loop()

    async def main() -> None:
        run.done = loop.create_future()
        connections: list[_Connection] = []

        async def open_one() -> _Connection:
            _, conn = await loop.create_connection(lambda: _Connection(run, reopen), host, port)
            return conn

        def reopen(_n: int) -> None:
            async def go() -> None:
                try:
                    conn = await open_one()
                except OSError as exc:
                    run.error = run.error or exc
                    run.finished_one()
                    return
                conn.send_next()
                run.finished_one()

            run.in_flight += 1  # keep the batch open until the new connection has taken over
            task = loop.create_task(go())
            task.add_done_callback(lambda _t: _release())

        def _release() -> None:
            run.in_flight -= 1
            run.finished_one()

        for _ in range(concurrency):
            connections.append(await open_one())
        cpu0 = server_cpu() if server_cpu else 0.0
        client0 = time.process_time()
        started = time.perf_counter()
        run.deadline = started + duration if duration is not None else float("inf")
        for conn in connections:
            conn.send_next()
        run.finished_one()
        await run.done
        ended = time.perf_counter()
        run.result.elapsed = ended - started
        run.result.client_cpu = time.process_time() - client0
        run.result.server_cpu = (server_cpu() - cpu0) if server_cpu else 0.0
        for conn in connections:
            if conn.transport is not None and not conn.transport.is_closing():
                conn.closing = True
                conn.transport.close()
        await asyncio.sleep(0)

    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
    if run.error is not None:
        raise RuntimeError(f"load generator: {run.error!r}") from run.error
    return run.result
