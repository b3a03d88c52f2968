"""Two real memcacheds: L1 in memory, L2 with extstore on disk (in a temp folder)."""

from __future__ import annotations

import pytest

from tests.support.procs import start_memcached


@pytest.fixture
def l1():
    proc = start_memcached()
    yield proc
    proc.stop()


@pytest.fixture
def l2(tmp_path):
    proc = start_memcached(args=["-o", f"ext_path={tmp_path}/extstore:64m"],
                           memory_mb=64)
    yield proc
    proc.stop()
