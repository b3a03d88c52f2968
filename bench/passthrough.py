"""The floor of Rend's per-client layout in Python: a pass-through that parses nothing.

Each client connection gets its own backend connection, as the proxy's L1Only does without
batching, and bytes are copied both ways unread (asyncio Protocols on uvloop). It is the issue's
"bare pass-through" row, measured in the same run as the proxy so that the cost of the layout itself
(two more system calls per request and a backend socket per client) can be told apart from the cost
of the proxy's parsing, orchestration and metrics. Not a product: no timeouts, no error answers.

    python bench/passthrough.py --listen 127.0.0.1:PORT --backend unix:/path/to/memcached.sock
"""

from __future__ import annotations

import argparse
import asyncio
import signal

import uvloop


class Backend(asyncio.Protocol):
    """The client's own memcached connection: answers go straight back to the client."""

    __slots__ = ("client",)

    def __init__(self, client: Client) -> None:
        self.client = client

    def data_received(self, data: bytes) -> None:
        transport = self.client.transport
        if transport is not None:
            transport.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.client.close()


class Client(asyncio.Protocol):
    """One client: what it sends waits in ``early`` only until its backend connection is up."""

    __slots__ = ("backend", "early", "transport")

    def __init__(self, backend_path: str) -> None:
        self.transport: asyncio.Transport | None = None
        self.backend: asyncio.Transport | None = None
        self.early: list[bytes] | None = []
        asyncio.get_running_loop().create_task(self.connect(backend_path))

    async def connect(self, path: str) -> None:
        try:
            backend, _ = await asyncio.get_running_loop().create_unix_connection(lambda: Backend(self), path)
        except OSError:
            self.close()
            return
        self.backend = backend
        if self.early:
            backend.write(b"".join(self.early))
        self.early = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.backend is not None:
            self.backend.write(data)
        elif self.early is not None:
            self.early.append(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.close()

    def close(self) -> None:
        for transport in (self.transport, self.backend):
            if transport is not None:
                transport.close()
        self.transport = self.backend = None


async def serve(host: str, port: int, backend_path: str) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Client(backend_path), host, port, backlog=4096)
    stopped = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopped.set)
    await stopped.wait()
    server.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--listen", required=True, help="HOST:PORT")
    p.add_argument("--backend", required=True, help="unix:PATH of the memcached")
    args = p.parse_args()
    host, port = args.listen.rsplit(":", 1)
    if not args.backend.startswith("unix:"):
        p.error("--backend takes unix:PATH (the pod's layout)")
    uvloop.run(serve(host, int(port), args.backend[5:]))


if __name__ == "__main__":
    main()
