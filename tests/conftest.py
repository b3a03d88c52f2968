"""Fixtures shared by the whole suite: real memcached processes and the real proxy."""

from __future__ import annotations

import pytest

from tests.support.procs import Proc, start_memcached, start_proxy


@pytest.fixture
def memcached() -> Proc:
    """A fresh memcached on 127.0.0.1, stopped by PID afterwards."""
    proc = start_memcached()
    yield proc
    proc.stop()


@pytest.fixture
def proxy(memcached: Proc) -> Proc:
    """The proxy (L1Only) in front of its own fresh memcached."""
    proc = start_proxy(memcached.addr)
    yield proc
    proc.stop()
