"""Plain (not TLS) client sockets without a transport object: the proxy reads and writes the file
descriptor itself, on the event loop's readiness callbacks.

Why: an idle client behind uvloop's transport costs about 1.2 KiB of the proxy's memory (the
transport, its libuv handle and their Python objects), most of the proxy's memory per client. A
descriptor watched with ``add_reader`` costs half of that, and a read or a write is still one
system call. Measured with ``python bench/run.py`` (docs/benchmarks.md). TLS listeners keep
uvloop's socket transport, under the proxy's own TLS layer (:mod:`.tls`).

Contract, towards :class:`~cacheproxy.server.connection.ClientConnection` (the part of
``asyncio.Transport`` it uses): ``write``, ``close`` (after the buffered bytes have been sent),
``abort``, ``is_closing``, ``pause_reading``/``resume_reading``, ``get_write_buffer_size`` and
``get_extra_info("peername" | "sockname")``. The connection gets ``connection_made``,
``data_received``, ``eof_received`` (its True keeps the socket open for the answers still to
come), ``pause_writing``/``resume_writing`` at the write buffer's marks, and ``connection_lost``
once, from the loop, never from inside one of its own calls. After the descriptor is closed its
number is forgotten: the kernel gives it to the next accepted client, which a late write must
never reach.

:class:`StreamServer` is the accept loop of one listening socket: each readiness accepts what is
waiting (at most ACCEPT_BATCH), and when the process is out of descriptors accepting pauses for
ACCEPT_PAUSE seconds instead of spinning on the error, as memcached does.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import socket
from collections.abc import Callable
from typing import Final

from ..server.connection import ClientConnection

log = logging.getLogger(__name__)

READ_SIZE: Final = 65536  # bytes asked for per readable event
HIGH_WATER: Final = 65536  # buffered unsent bytes above which the connection is told to stop
LOW_WATER: Final = 16384  # ... and at or below which it may go on (asyncio's defaults)
ACCEPT_BATCH: Final = 256  # connections accepted per readiness of the listening socket
ACCEPT_PAUSE: Final = 0.1  # seconds without accepting after running out of descriptors
OUT_OF_RESOURCES: Final = frozenset((errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM))


class Stream:
    """One accepted client socket, by descriptor."""

    __slots__ = ("_buffer", "_closing", "_ended", "_fd", "_loop", "_protocol", "_reading", "_writing_paused")

    def __init__(self, loop: asyncio.AbstractEventLoop, fd: int, protocol: ClientConnection) -> None:
        self._loop = loop
        self._fd = fd  # -1 once closed
        self._protocol = protocol
        self._buffer: bytearray | None = None  # bytes the socket did not take yet
        self._closing = False
        self._ended = False  # the client's end of input was read
        self._reading = False
        self._writing_paused = False

    def start(self) -> None:
        self._protocol.connection_made(self)  # type: ignore[arg-type]  # the Transport subset above
        if not self._closing:
            self._reading = True
            self._loop.add_reader(self._fd, self._on_readable)

    # -- reading ---------------------------------------------------------------------------

    def _on_readable(self) -> None:
        try:
            data = os.read(self._fd, READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:  # reset by the peer
            self._lose(exc)
            return
        if data:
            self._protocol.data_received(data)
            return
        self._ended = True
        self.pause_reading()
        if not self._protocol.eof_received():
            self.close()

    def pause_reading(self) -> None:
        if self._reading:
            self._reading = False
            self._loop.remove_reader(self._fd)

    def resume_reading(self) -> None:
        if not self._reading and not self._closing and not self._ended and self._fd >= 0:
            self._reading = True
            self._loop.add_reader(self._fd, self._on_readable)

    # -- writing ---------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        if self._fd < 0 or not data:
            return  # closed: an answer for a client that is gone
        buffer = self._buffer
        if buffer is not None:
            buffer.extend(data)
        else:
            try:
                sent = os.write(self._fd, data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError as exc:  # the client reset or went away
                self._lose(exc)
                return
            if sent == len(data):
                return
            buffer = self._buffer = bytearray(memoryview(data)[sent:])  # one copy of the rest
            self._loop.add_writer(self._fd, self._on_writable)
        if not self._writing_paused and len(buffer) > HIGH_WATER:
            self._writing_paused = True
            self._protocol.pause_writing()

    def _on_writable(self) -> None:
        buffer = self._buffer
        if buffer is None:
            return
        try:
            sent = os.write(self._fd, buffer)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._lose(exc)
            return
        del buffer[:sent]
        if buffer:
            if self._writing_paused and len(buffer) <= LOW_WATER:
                self._writing_paused = False
                self._protocol.resume_writing()
            return
        self._buffer = None
        self._loop.remove_writer(self._fd)
        if self._closing:
            self._lose(None)
        elif self._writing_paused:
            self._writing_paused = False
            self._protocol.resume_writing()

    def get_write_buffer_size(self) -> int:
        return len(self._buffer) if self._buffer is not None else 0

    # -- ending ----------------------------------------------------------------------------

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        """Stop reading; close once the buffered bytes are sent."""
        if self._closing:
            return
        self._closing = True
        self.pause_reading()
        if self._buffer is None:
            self._lose(None)

    def abort(self) -> None:
        """Close now; buffered bytes are dropped."""
        self._closing = True
        self._lose(None)

    def _lose(self, exc: Exception | None) -> None:
        fd = self._fd
        if fd < 0:
            return
        self._fd = -1
        self._closing = True
        if self._reading:
            self._reading = False
            self._loop.remove_reader(fd)
        if self._buffer is not None:
            self._buffer = None
            self._loop.remove_writer(fd)
        os.close(fd)
        self._loop.call_soon(self._protocol.connection_lost, exc)

    def get_extra_info(self, name: str, default: object = None) -> object:
        if self._fd < 0 or name not in ("peername", "sockname"):
            return default
        sock = socket.socket(fileno=self._fd)  # borrowed: detached below, never closed
        try:
            return sock.getpeername() if name == "peername" else sock.getsockname()
        except OSError:
            return default
        finally:
            sock.detach()


class StreamServer:
    """Accepts on listening SOCKETS; every accepted socket becomes a :class:`Stream` of a new
    connection from FACTORY. Has what the proxy uses of ``asyncio.Server``."""

    def __init__(self, loop: asyncio.AbstractEventLoop, sockets: list[socket.socket],
                 factory: Callable[[], ClientConnection]) -> None:
        self.loop = loop
        self.sockets = tuple(sockets)
        self._factory = factory
        self._watched: set[socket.socket] = set()
        self._closed = False
        self._logged_at = -1e9
        for sock in sockets:
            sock.setblocking(False)
            self._watch(sock)

    def _watch(self, sock: socket.socket) -> None:
        if not self._closed and sock not in self._watched:
            self._watched.add(sock)
            self.loop.add_reader(sock.fileno(), self._accept, sock)

    def _accept(self, sock: socket.socket) -> None:
        nodelay = sock.family in (socket.AF_INET, socket.AF_INET6)
        for _ in range(ACCEPT_BATCH):
            try:
                conn, _ = sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue  # the client gave up while waiting in the backlog
            except OSError as exc:
                if exc.errno not in OUT_OF_RESOURCES:
                    raise
                now = self.loop.time()
                if now - self._logged_at > 10.0:
                    self._logged_at = now
                    log.warning("accept failed (%s): not accepting for %.1fs", exc, ACCEPT_PAUSE)
                self._watched.discard(sock)
                self.loop.remove_reader(sock.fileno())
                self.loop.call_later(ACCEPT_PAUSE, self._watch, sock)
                return
            try:
                conn.setblocking(False)
                if nodelay:
                    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:  # reset between accept and here: nothing to serve
                conn.close()
                continue
            Stream(self.loop, conn.detach(), self._factory()).start()

    def is_serving(self) -> bool:
        return bool(self._watched)

    def close(self) -> None:
        self._closed = True
        for sock in self._watched:
            self.loop.remove_reader(sock.fileno())
        self._watched.clear()
        for sock in self.sockets:
            sock.close()

    async def wait_closed(self) -> None:
        return None


def tcp_sockets(host: str, port: int, *, reuse_port: bool, backlog: int) -> list[socket.socket]:
    """Listening sockets on every address HOST resolves to (as asyncio's ``create_server``)."""
    infos = socket.getaddrinfo(host or None, port, socket.AF_UNSPEC, socket.SOCK_STREAM, 0, socket.AI_PASSIVE)
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(backlog)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def unix_socket(path: str, *, backlog: int) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    return sock
