"""The binary-protocol session: a connection whose first byte was 0x80.

Each binary request is mapped to the meta (or text) command that answers it
(:mod:`cacheproxy.protocol.binary_meta`), sent through the connection's orca like a meta
client's command, and the backend's answer is turned back into memcached's exact binary frame.
"""

from __future__ import annotations

from collections import deque

from ..backends.errors import BackendError
from ..metrics.stats import STATS, clock
from ..orcas.base import Orca
from ..protocol.binary import BinaryParser, BinaryRequest, error_frame
from ..protocol.binary_meta import from_meta, to_meta
from ..protocol.meta import LINES, META, MetaResponse
from .connection import ClientConnection

# Statuses as metric results.
_RESULTS = {0x00: "ok", 0x01: "not_found", 0x02: "exists", 0x03: "server_error", 0x04: "client_error",
            0x05: "not_stored", 0x06: "client_error", 0x81: "error", 0x82: "server_error"}
INTERNAL_ERROR = 0x84
_HIT_COMMANDS = frozenset({"get", "getk", "gat", "gatk", "gete"})


def result_of(request: BinaryRequest, frame: bytes) -> str:
    if not frame:
        return "miss" if request.name in _HIT_COMMANDS else "ok"
    status = int.from_bytes(frame[6:8], "big") if len(frame) >= 8 else 0
    if status == 0 and request.name in _HIT_COMMANDS:
        return "hit"
    if status == 1 and request.name in _HIT_COMMANDS:
        return "miss"
    return _RESULTS.get(status, "error")


class BinarySession:
    def __init__(self, conn: ClientConnection) -> None:
        self.conn = conn
        orca = conn.orca
        assert orca is not None  # the connection picks its orca before its session
        self.orca: Orca = orca
        self.parser = BinaryParser(max_item_size=conn.context.config.max_item_size)
        self.count_lookups = not orca.counts_lookups
        self.backlog: deque[BinaryRequest | None] = deque()  # parsed, waiting for the client to keep up

    def feed(self, data: bytes, now: float) -> bool:
        """Serve the frames in DATA; False: the caller flushes and checks what is held."""
        self.backlog.extend(self.parser.feed(data))
        if self.parser.closed:
            self.backlog.append(None)  # close after everything parsed before the bad frame
        self.run_backlog()
        return False

    def run_backlog(self) -> None:
        """Serve parsed requests while the client keeps up with its answers (see may_dispatch)."""
        backlog, conn = self.backlog, self.conn
        now = clock()
        while backlog and conn.may_dispatch() and not conn.closing:
            request = backlog.popleft()
            if request is None:
                STATS.errors["protocol"] += 1
                conn.close_after_answers()
                return
            self.dispatch(request, now)
            if request.close:
                conn.close_after_answers()
                return

    def dispatch(self, request: BinaryRequest, started: float) -> None:
        call = to_meta(request)
        slot = self.conn.slot()
        if call.command is None:
            self.finish(request, slot, started, from_meta(request, None))
            return
        conn = self.conn

        def done(resp: MetaResponse | BackendError) -> None:
            try:
                if isinstance(resp, BackendError):
                    STATS.errors["server_error"] += 1
                    # 0x84: the binary protocol's "internal error"; the body says which backend
                    frame = error_frame(request.opcode, request.opaque, INTERNAL_ERROR, resp.reason.encode())
                else:
                    frame = from_meta(request, resp)
                self.finish(request, slot, started, frame)
            except Exception:
                conn.fault()

        line, _, rest = call.command.partition(b"\r\n")
        if call.shape == META:
            self.orca.meta(line, rest or None, False, done)
        else:
            self.orca.text(line, call.shape == LINES, done)

    def finish(self, request: BinaryRequest, slot, started: float, frame: bytes) -> None:
        result = result_of(request, frame)
        if self.count_lookups and request.name in _HIT_COMMANDS and result in ("hit", "miss"):
            STATS.lookups[("l1", result)] += 1
        self.conn.answer(slot, ("binary", request.name, result), started, frame)
