"""One timer for all backend connections: requests that wait too long are failed.

A timer per request would cost a heap push on the hot path; instead one task looks at the
oldest in-flight request of every *busy* connection a few times a second. Connections enter the
busy set when their first request goes out (see :meth:`BackendConnection.send`) and leave it at
the first sweep that finds them idle, so a sweep costs what is in flight, not what is connected:
walking 10,000 idle L1Only connections four times a second stalled the loop for ~1 ms each time.
"""

from __future__ import annotations

import asyncio

from ..metrics.stats import clock
from .connection import BackendConnection

BUSY: set[BackendConnection] = set()


def track(conn: BackendConnection) -> BackendConnection:
    conn.watch = BUSY
    conn.on_close = BUSY.discard  # closed for good: nothing left to time out
    return conn


async def sweep_forever(interval: float = 0.25) -> None:
    while True:
        await asyncio.sleep(interval)
        now = clock()  # the clock connections stamp their requests and answers with
        for conn in list(BUSY):
            if conn.pending:
                conn.check_timeout(now)
            else:
                BUSY.discard(conn)  # back when its next request goes out
                conn.watched = False
