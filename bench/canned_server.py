"""The load generator's ceiling: a raw uvloop/asyncio protocol answering each request with the same canned bytes.

It does no HTTP parsing beyond finding the end of each request head (the benchmark sends bodiless GETs to it), so
requests/s against it measure how fast bench.loadgen can go on this machine, not a server.

    python -m bench.canned_server --port 8999 --body-bytes 40000
"""

from __future__ import annotations

import argparse
import asyncio
import signal

try:
    import uvloop
except ImportError:  # pragma: no cover
    uvloop = None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--body-bytes", type=int, default=40000)
    args = parser.parse_args()
    body = b"{" + b" " * max(0, args.body_bytes - 2) + b"}"
    response = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                + str(len(body)).encode() + b"\r\n\r\n" + body)

    class Canned(asyncio.Protocol):
        def connection_made(self, transport) -> None:
            self.transport = transport
            self.buf = b""

        def data_received(self, data: bytes) -> None:
            self.buf += data
            while (end := self.buf.find(b"\r\n\r\n")) >= 0:
                self.buf = self.buf[end + 4:]
                self.transport.write(response)

    loop = uvloop.new_event_loop() if uvloop else asyncio.new_event_loop()
    server = loop.run_until_complete(loop.create_server(Canned, "127.0.0.1", args.port))
    loop.add_signal_handler(signal.SIGTERM, loop.stop)
    loop.add_signal_handler(signal.SIGINT, loop.stop)
    loop.run_forever()
    server.close()


if __name__ == "__main__":
    main()
