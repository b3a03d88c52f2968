"""Authentication per client connection (``auth_file``): who may talk to the cache.

With an auth file, a connection's first byte still picks its protocol, and then:

- a text connection starts in :class:`AsciiAuthGate`, which answers everything as ``memcached -Y``
  does before authentication (:mod:`cacheproxy.protocol.asciiauth`) and opens no backend
  connection. Once the client authenticates, the gate creates the connection's orca and a normal
  :class:`TextSession`, installs it as the connection's session and hands it the rest of the
  input: from then on requests run exactly as without auth, with no per-request check;
- a binary connection gets :class:`SaslBinarySession`: the binary session with SASL PLAIN as
  ``memcached -S`` answers it (:mod:`cacheproxy.protocol.sasl`). SASL requests can come at any
  time (a second authentication, or listing the mechanisms, de-authenticates, as in memcached),
  so this session stays; the check is one attribute test in the binary parser per request.

Without an auth file none of this runs: the connection creates its sessions directly.

Refused authentications are counted (``cacheproxy_auth_total{protocol,result}``), and the
``auth_max_failures``-th on one connection closes it (memcached never closes; 0 keeps that).
"""

from __future__ import annotations

from collections import deque

from ..metrics.stats import STATS
from ..protocol.asciiauth import AsciiAuth
from ..protocol.binary import BinaryParser, BinaryRequest, Op
from ..protocol.requests import Request
from ..protocol.sasl import SaslServer
from ..protocol.text import TextParser
from ..security.authfile import Credentials
from .binary import BinarySession
from .connection import ClientConnection, Session, SessionFactory
from .sessions import BINARY_MAGIC
from .text import TextSession

ASCII_SUCCESS = ("ascii", "ok")
ASCII_FAILURE = ("ascii", "failed")
_SASL_OPS = frozenset({Op.SASL_LIST_MECHS, Op.SASL_AUTH, Op.SASL_STEP})


class AsciiAuthGate:
    """Stands in for a text connection's session until the client authenticates."""

    __slots__ = ("conn", "failures", "gate", "max_failures", "successor")

    def __init__(self, conn: ClientConnection, credentials: Credentials, max_failures: int) -> None:
        self.conn = conn
        self.gate = AsciiAuth(credentials.check)
        self.max_failures = max_failures
        self.failures = 0
        self.successor: TextSession | None = None

    # The connection asks its session for these after each read.
    @property
    def parser(self) -> AsciiAuth | TextParser:
        return self.gate if self.successor is None else self.successor.parser

    @property
    def backlog(self) -> deque[Request] | None:
        return None if self.successor is None else self.successor.backlog

    def run_backlog(self) -> None:
        if self.successor is not None:
            self.successor.run_backlog()

    def feed(self, data: bytes, now: float) -> bool:
        conn = self.conn
        result = self.gate.feed(data)
        for answer in result.answers:
            conn.complete(conn.slot(), answer)
        if result.failures:
            STATS.auth[ASCII_FAILURE] += result.failures
            self.failures += result.failures
            if self.max_failures and self.failures >= self.max_failures:
                STATS.errors["auth_closed"] += 1
                conn.close_after_answers()
                return False
        if result.close:
            STATS.errors["protocol"] += 1
            conn.close()
            return False
        if not result.authenticated:
            return False
        STATS.auth[ASCII_SUCCESS] += 1
        conn.orca = conn.context.new_orca()
        session = self.successor = TextSession(conn)
        conn.session = session
        return session.feed(result.rest, now) if result.rest else False


class SaslBinarySession(BinarySession):
    """The binary session of a connection that must authenticate with SASL PLAIN first."""

    def __init__(self, conn: ClientConnection, credentials: Credentials, max_failures: int) -> None:
        super().__init__(conn)
        self.parser = BinaryParser(max_item_size=conn.context.config.max_item_size, sasl=True)
        self.sasl = SaslServer(credentials.check)
        self.max_failures = max_failures
        self.failures = 0

    def dispatch(self, request: BinaryRequest, started: float) -> None:
        if request.error is None and request.command in _SASL_OPS:
            self.authenticate(request, started)
        else:
            super().dispatch(request, started)

    def authenticate(self, request: BinaryRequest, started: float) -> None:
        sasl, parser = self.sasl, self.parser
        ok: bool | None = None
        if request.command == Op.SASL_LIST_MECHS:
            frame = sasl.list_mechs(request.opaque)
        else:
            frame, ok = sasl.answer(request.opcode, request.opaque, request.key, request.value)
            STATS.auth[("sasl", {True: "ok", False: "failed", None: "continue"}[ok])] += 1
        parser.authenticated = sasl.authenticated
        self.finish(request, self.conn.slot(), started, frame)
        if ok is False:
            self.failures += 1
            if self.max_failures and self.failures >= self.max_failures:
                STATS.errors["auth_closed"] += 1
                parser.closed = True  # read nothing more
                self.backlog.clear()
                self.conn.close_after_answers()
                return
        self.backlog.extend(parser.resume())
        if parser.closed:
            self.backlog.append(None)


def authenticating(credentials: Credentials) -> SessionFactory:
    """The session factory when an auth file is configured: every connection authenticates first
    (by the first byte, as :func:`~cacheproxy.server.sessions.start_session` picks protocols)."""

    def start(conn: ClientConnection, first_byte: int) -> Session:
        limit = conn.context.config.auth_max_failures
        if first_byte == BINARY_MAGIC:
            conn.orca = conn.context.new_orca()  # VERSION is served before authentication, as memcached does
            return SaslBinarySession(conn, credentials, limit)
        return AsciiAuthGate(conn, credentials, limit)

    return start
