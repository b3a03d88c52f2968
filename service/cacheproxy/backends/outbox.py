"""Coalesced writes for everything that writes during one event-loop turn.

Client connections and backend connections both queue their output and mark themselves here;
whoever finishes handling a read (a client's requests parsed, a backend's answers delivered)
calls :func:`flush`, so each socket gets one ``write`` per turn, sent before the loop polls
again. A single ``call_soon`` per turn is the fallback for writes made from tasks (the L1L2
orca). This replaces a ``call_soon`` handle per write, which cost more than the writes.
"""

from __future__ import annotations

import asyncio
from typing import Final, Protocol


class Writer(Protocol):
    """A client or backend connection: it queues output and writes it all in ``flush_out``."""

    def flush_out(self) -> None: ...


# Writers with output queued (callers may test it before calling flush).
DIRTY: Final[list[Writer]] = []
_scheduled = False


def mark(writer: Writer) -> None:
    """WRITER has output queued; it is flushed at the end of this turn at the latest."""
    global _scheduled
    DIRTY.append(writer)
    if not _scheduled:
        _scheduled = True
        asyncio.get_running_loop().call_soon(_flush_scheduled)


def _flush_scheduled() -> None:
    global _scheduled
    _scheduled = False
    flush()


def flush() -> None:
    """Write out everything queued so far. Writers queued while flushing are reached by the same
    walk, and a writer whose flush raises leaves the ones after it queued, not forgotten."""
    i = 0
    while i < len(DIRTY):  # by index: no copy of the list per flush (one per request in L1Only)
        DIRTY[i].flush_out()
        i += 1
    DIRTY.clear()
