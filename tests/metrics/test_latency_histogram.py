"""The request-duration histogram: its bucket search and its clock."""

from __future__ import annotations

import math
from bisect import bisect_left

from cacheproxy.metrics.stats import BUCKETS, Histogram, bucket
from hypothesis import given
from hypothesis import strategies as st
from pymemcache.client.base import Client

from tests.support.scrape import samples


def test_bucket_agrees_with_bisect_at_every_bound():
    for bound in BUCKETS:
        for x in (bound, math.nextafter(bound, 0.0), math.nextafter(bound, math.inf)):
            assert bucket(x) == bisect_left(BUCKETS, x), x
    for x in (-1.0, 0.0, 1e-9, 7.5, 1e9, math.inf):
        assert bucket(x) == bisect_left(BUCKETS, x), x


@given(st.floats(min_value=-1.0, max_value=100.0, allow_nan=False))
def test_bucket_agrees_with_bisect(seconds):
    assert bucket(seconds) == bisect_left(BUCKETS, seconds)


def test_histogram_counts_and_sums():
    h = Histogram()
    for s in (0.00002, 0.0003, 0.0003, 2.0, 9.0):
        h.observe(s)
    assert h.counts == [1, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1]
    assert math.isclose(h.total, 11.00062)


def test_durations_are_not_whole_milliseconds(proxy):
    """uvloop's loop.time() counts whole milliseconds: requests timed by it would sum to a whole
    number of milliseconds (mostly 0 or 1 ms each). Timed by a fine clock, they do not."""
    host, port = proxy.addr.rsplit(":", 1)
    c = Client((host, int(port)), timeout=5)
    c.set("fine", b"1")
    for _ in range(200):
        assert c.get("fine") == b"1"
    c.close()
    m = samples(proxy.extra["admin"])
    total = m[("cacheproxy_request_duration_seconds_sum", (("command", "get"),))]
    assert m[("cacheproxy_request_duration_seconds_count", (("command", "get"),))] == 200
    assert 0 < total < 200 * 0.5
    assert abs(total * 1000 - round(total * 1000)) > 1e-6
