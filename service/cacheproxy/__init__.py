"""cacheproxy: a Rend-shaped memcached proxy on asyncio.

A request travels: listener (accept loop) → server (one protocol object per client) →
orca (request orchestration across cache levels) → handler (how a value is laid out on a
backend: plain or chunked) → backend (a meta-protocol connection to memcached).
"""

from . import compiled

compiled.install()  # compiled hot path or pure Python: decided before any hot module is imported

__version__ = "0.1.0"
