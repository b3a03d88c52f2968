"""One timer for all backend connections: requests that wait too long are failed.

A timer per request would cost a heap push on the hot path; instead one task looks at the
oldest in-flight request of every live connection a few times a second.
"""

from __future__ import annotations

import asyncio

from .connection import BackendConnection

LIVE: set[BackendConnection] = set()


def track(conn: BackendConnection) -> BackendConnection:
    LIVE.add(conn)
    conn.on_close = LIVE.discard  # closed for good: nothing left to time out
    return conn


async def sweep_forever(interval: float = 0.25) -> None:
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(interval)
        now = loop.time()
        for conn in list(LIVE):
            if conn.pending:
                conn.check_timeout(now)
