"""Process-wide setup shared by the single-process proxy and its ``--workers``: the event loop
and the open-files limit."""

from __future__ import annotations

import resource


def raise_nofile_limit() -> None:
    """Each client may hold two descriptors (its socket and its backend's): take all we may."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def install_event_loop() -> str:
    """uvloop when installed (the name of the loop in use is returned for the startup log)."""
    try:
        import uvloop
    except ImportError:
        return "asyncio"
    uvloop.install()
    return "uvloop"
