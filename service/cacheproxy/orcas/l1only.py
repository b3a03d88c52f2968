"""L1Only: every request goes to the one memcached (Rend's default orca).

In Rend's classic layout (``owned=True``) each client connection owns one backend connection,
so a fault on one client's connection touches no other client. With ``batching.enabled`` the
orca instead rides a lane of the shared, batched pool (``owned=False``).
"""

from __future__ import annotations

from ..backends.connection import BackendConnection
from ..backends.pool import Lane
from ..handlers.plain import PlainHandler


class L1Only(PlainHandler):
    """The plain handler on L1 (the servers count its hits and misses)."""

    __slots__ = ("owned",)

    def __init__(self, conn: BackendConnection | Lane, owned: bool = True) -> None:
        super().__init__(conn)
        self.owned = owned

    def close(self) -> None:
        if self.owned:
            self.conn.close()
