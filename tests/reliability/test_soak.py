"""The soak run as a pytest test (marker ``soak``: excluded by default; ``scripts/soak.sh``)."""

from __future__ import annotations

import os

import pytest

from tests.reliability.soak import SLOPE_LIMIT_MIB_PER_MIN, run


@pytest.mark.soak
@pytest.mark.timeout(1800)
def test_soak_10k_connections_rss_flat_nothing_leaks():
    seconds = int(os.environ.get("CACHEPROXY_SOAK_SECONDS", "600"))
    report = run(conns=10_000, seconds=seconds, rate=0.5, interval=5.0, warmup=min(60.0, seconds / 5))
    assert report["mcload_exit"] == 0 and report["load"].get("errors") == 0, report
    assert abs(report["rss_slope_after_warmup_mib_per_min"]) <= SLOPE_LIMIT_MIB_PER_MIN, report
    assert report["ok"], report
