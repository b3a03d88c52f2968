"""Binary-protocol SASL as ``memcached -S`` answers it (PLAIN only), sans-IO.

memcached 1.6.18 hands SASL to Cyrus SASL (``proto_bin.c``); with ``mech_list: plain`` and a
sasldb, measured against the real server:

- ``SASL_LIST_MECHS`` (0x20) answers ``PLAIN``; ``VERSION`` is served before authentication;
  every other command before it gets status 0x20 ``Auth failure.`` and the connection closes
  (checked before the command's own validation, after the header's length check);
- ``SASL_AUTH`` (0x21) with mechanism ``PLAIN`` (any case) and data ``authzid\\0user\\0password``:
  ``Authenticated`` when user and password are an entry and the authzid is empty or the user;
  status 0x20 ``Auth failure.`` otherwise (unknown mechanism, malformed data, wrong password),
  and the connection stays open; no data at all answers 0x21 (continue) with an empty
  challenge, and ``SASL_STEP`` (0x22) then carries the credentials;
- every ``SASL_AUTH``/``SASL_STEP`` first marks the connection unauthenticated, and Cyrus refuses
  to start over on a connection that completed an authentication: a second authentication on
  an authenticated connection fails, and the connection is then unauthenticated;
- a ``SASL_STEP`` that does not follow a started exchange fails; after the empty ``SASL_AUTH``
  a refused step may be followed by another;
- ``SASL_LIST_MECHS`` marks the connection unauthenticated too (memcached resets the SASL
  connection state before listing);
- a mechanism name over 32 bytes answers 0x04 ``Invalid arguments``; data that does not fit an
  unchunked item (about half of -I) answers 0x82 ``Out of memory``; both swallow the data
  (:class:`~cacheproxy.protocol.binary.BinaryParser` with ``sasl=True`` does that part).

Not reproduced: Cyrus's realms (memcached accepts ``user@<its host name>`` for ``user``); the
proxy looks the name up as written.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from .binary import Op, Status, error_frame, frame

MECHANISMS: Final = b"PLAIN"
MAX_MECH_LEN: Final = 32
AUTHENTICATED: Final = b"Authenticated"


class SaslServer:
    """One binary connection's SASL state. ``answer`` returns the frame for a SASL request."""

    __slots__ = ("authenticated", "check", "completed", "continuing", "started")

    def __init__(self, check: Callable[[bytes, bytes], bool]) -> None:
        self.check = check
        self.authenticated = False
        self.started = False  # memcached's sasl_started: a SASL_AUTH began an exchange
        self.continuing = False  # PLAIN without data: the credentials come with SASL_STEP
        self.completed = False  # an exchange succeeded: Cyrus will not start another one

    def list_mechs(self, opaque: int) -> bytes:
        self.authenticated = False
        return frame(Op.SASL_LIST_MECHS, opaque, value=MECHANISMS)

    def answer(self, opcode: int, opaque: int, mech: bytes, data: bytes) -> tuple[bytes, bool | None]:
        """The frame answering SASL_AUTH/SASL_STEP, and True (authenticated), False (refused) or
        None (continue)."""
        self.authenticated = False
        ok: bool | None
        if opcode == Op.SASL_AUTH:
            if self.completed or mech.upper() != MECHANISMS:
                ok = False
            elif not data:
                ok = None
            else:
                ok = self._plain(data)
            self.started = ok is not False
            self.continuing = ok is None
        else:  # SASL_STEP: a refused step leaves the exchange open (Cyrus PLAIN), another may follow
            ok = self._plain(data) if self.started and self.continuing and not self.completed else False
        if ok is None:
            return frame(opcode, opaque, status=Status.AUTH_CONTINUE), None
        if ok:
            self.authenticated = self.completed = True
            return frame(opcode, opaque, value=AUTHENTICATED), True
        return error_frame(opcode, opaque, Status.AUTH_ERROR), False

    def _plain(self, data: bytes) -> bool:
        parts = data.split(b"\0")
        if len(parts) != 3:
            return False
        authzid, user, password = parts
        if not user or not password or (authzid and authzid != user):
            return False
        return self.check(user, password)
