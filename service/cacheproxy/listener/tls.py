"""TLS on a client listener, done by the proxy over a plain socket transport.

Why not the event loop's own TLS transport: when a client ends its input (a TLS ``close_notify``,
or a TCP FIN) that transport closes the connection at once, so the answers to requests it had
already read are lost. memcached answers every whole request it read before the end and only then
closes (a client that writes its requests and then ends its sending side gets all its answers);
so does the proxy, over TLS as over plain TCP (see ``ClientConnection.eof_received``).

:class:`TLSLayer` is the protocol of the plain socket transport and the transport of the
:class:`ClientConnection` above it (the part of ``asyncio.Transport`` that connection uses:
``write``, ``close``, ``abort``, ``is_closing``, ``pause_reading``/``resume_reading``,
``get_write_buffer_size``, ``get_extra_info``). Bytes pass through one ``ssl.SSLObject`` over
memory BIOs.

- The handshake is the layer's own: the connection is made (and counted in
  ``cacheproxy_tls_handshakes_total{result="ok"}``) only once it has finished. A handshake that
  fails (a plaintext client, an old protocol version, a missing or untrusted client certificate),
  or that has not finished after the listener's handshake timeout, closes the socket and is counted as
  ``failed``, exactly once; nothing of the proxy's is held for it beyond this layer.
- The client's end of input, either way, is handed to the connection after every byte before it;
  the layer keeps writing until the connection closes, and then sends its own ``close_notify``.
- Reading paused by the connection stops both the socket and the decryption of what has already
  arrived (bounded by one read of the socket).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from typing import Final

from ..metrics.stats import STATS
from ..server.connection import ClientConnection

READ_SIZE: Final = 65536  # plaintext bytes asked of the SSLObject per read


class TLSLayer(asyncio.Protocol):
    __slots__ = ("_counted", "_ended", "_eof", "_paused", "_timer", "closing", "conn",
                 "incoming", "outgoing", "raw", "ready", "timeout", "tls")

    def __init__(self, context: ssl.SSLContext, conn: ClientConnection, timeout: float) -> None:
        self.conn = conn
        self.timeout = timeout
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.tls = context.wrap_bio(self.incoming, self.outgoing, server_side=True)
        self.raw: asyncio.Transport | None = None
        self.ready = False  # the handshake finished: the connection above is made
        self.closing = False
        self._counted = False  # the handshake's result is counted
        self._paused = False  # the connection paused reading
        self._eof = False  # the socket's end (FIN) was read
        self._ended = False  # the connection was told the client's input ended
        self._timer: asyncio.TimerHandle | None = None

    # -- from the socket -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.raw = transport  # type: ignore[assignment]  # a socket transport
        self._timer = asyncio.get_running_loop().call_later(self.timeout, self._expire)

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        self.incoming.write(data)
        if self.ready or self._handshake():
            self._deliver()

    def eof_received(self) -> bool:
        if not self.ready:
            self._count("failed")
            return False  # closed, as a handshake cut off
        self._eof = True
        self._deliver()
        return True  # keep the socket: answers still to come leave before the connection closes it

    def pause_writing(self) -> None:
        if self.ready:
            self.conn.pause_writing()

    def resume_writing(self) -> None:
        if self.ready:
            self.conn.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.ready:
            self.conn.connection_lost(exc)
        else:
            self._count("failed")
        self.raw = None

    # -- the handshake ---------------------------------------------------------------------

    def _handshake(self) -> bool:
        try:
            self.tls.do_handshake()
        except ssl.SSLWantReadError:
            self._flush()
            return False
        except OSError:  # ssl.SSLError is one
            self._flush()  # the alert that says why, where there is one
            self._count("failed")
            self.close()
            return False
        self.ready = True
        self._count("ok")
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._flush()
        self.conn.connection_made(self)  # type: ignore[arg-type]  # the Transport subset above
        return not self.closing

    def _expire(self) -> None:
        self._timer = None
        if not self.ready:
            self._count("failed")
            self.abort()

    def _count(self, result: str) -> None:
        if not self._counted:
            self._counted = True
            STATS.tls_handshakes[result] += 1

    # -- reading ---------------------------------------------------------------------------

    def _deliver(self) -> None:
        """Decrypt what has arrived and give it to the connection until it pauses; after the
        last byte, the end of input if the client sent it."""
        conn = self.conn
        while not self._paused and not self.closing:
            try:
                data = self.tls.read(READ_SIZE)
            except ssl.SSLWantReadError:
                break  # no whole record left
            except ssl.SSLZeroReturnError:
                data = b""
            except OSError:  # ssl.SSLError is one
                self.abort()  # a corrupt or forged record: nothing after it can be trusted
                return
            if not data:  # close_notify
                self._end()
                break
            conn.data_received(data)
        self._flush()  # key updates and alerts the reads produced
        if self._eof and not self._paused and not self.closing:
            self._end()

    def _end(self) -> None:
        if self._ended:
            return
        self._ended = True
        if not self._eof and self.raw is not None:
            self.raw.pause_reading()  # nothing after close_notify is read
        if not self.conn.eof_received():
            self.close()

    def pause_reading(self) -> None:
        self._paused = True
        if self.raw is not None and not self._eof and not self._ended and not self.closing:
            self.raw.pause_reading()

    def resume_reading(self) -> None:
        if not self._paused or self.closing:
            return
        self._paused = False
        if self.raw is not None and not self._eof and not self._ended:
            self.raw.resume_reading()
        if not self._ended:
            asyncio.get_running_loop().call_soon(self._deliver)  # what arrived while paused

    # -- writing and ending ----------------------------------------------------------------

    def write(self, data: bytes) -> None:
        if self.closing or self.raw is None:
            return
        try:
            self.tls.write(data)
        except OSError:  # ssl.SSLError is one
            self.abort()
            return
        self._flush()

    def _flush(self) -> None:
        data = self.outgoing.read()
        if data and self.raw is not None:
            self.raw.write(data)

    def get_write_buffer_size(self) -> int:
        return self.raw.get_write_buffer_size() if self.raw is not None else 0

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        """Send close_notify after the buffered bytes, then close the socket."""
        if self.closing:
            return
        self.closing = True
        if self.ready:
            with contextlib.suppress(OSError):  # SSLWantReadError: the client's close_notify has not come
                self.tls.unwrap()  # writes the proxy's close_notify either way
            self._flush()
        if self.raw is not None:
            self.raw.close()

    def abort(self) -> None:
        self.closing = True
        if self.raw is not None:
            self.raw.abort()

    def get_extra_info(self, name: str, default: object = None) -> object:
        """The socket's (the connection asks only for ``peername``)."""
        return self.raw.get_extra_info(name, default) if self.raw is not None else default
