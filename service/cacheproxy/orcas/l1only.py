"""L1Only: every request goes to the one memcached (Rend's default orca).

With ``pooled=False`` (Rend's classic layout) each client connection owns one backend
connection, so a fault on one client's connection touches no other client. With a shared
pool the orca borrows connections from it instead.
"""

from __future__ import annotations

from ..backends.connection import BackendConnection, Callback
from ..backends.pool import Lane
from ..handlers.plain import PlainHandler
from ..metrics.stats import STATS
from ..protocol.meta import MetaResponse


class L1Only(PlainHandler):
    """The plain handler on L1, counting hits and misses on the way back."""

    __slots__ = ("owned",)

    def __init__(self, conn: BackendConnection | Lane, owned: bool = True) -> None:
        super().__init__(conn)
        self.owned = owned

    def get(self, key: bytes, cb: Callback, *, cas: bool = False, exptime: int | None = None,
            ttl: bool = False) -> None:
        def counted(resp: MetaResponse | Exception) -> None:
            code = getattr(resp, "code", None)
            if code == b"VA":
                STATS.lookups[("l1", "hit")] += 1
            elif code == b"EN":
                STATS.lookups[("l1", "miss")] += 1
            cb(resp)

        super().get(key, counted, cas=cas, exptime=exptime, ttl=ttl)

    def close(self) -> None:
        if self.owned:
            self.conn.close()
