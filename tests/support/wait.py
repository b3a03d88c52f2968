"""Waiting on a condition without sleeping as synchronisation: poll it, with a deadline."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def poll(check: Callable[[], T], *, timeout: float = 30.0, interval: float = 0.2, what: str = "condition") -> T:
    """CHECK() until it returns something truthy (returned), or fail after TIMEOUT seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last value: {last!r}")
