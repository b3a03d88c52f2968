"""The admin server: /metrics in Prometheus text format, /healthz, /readyz."""

from __future__ import annotations

from pymemcache.client.base import Client

from tests.support.scrape import http_get, samples


def test_metrics_count_requests(proxy):
    host, port = proxy.addr.rsplit(":", 1)
    c = Client((host, int(port)), timeout=5)
    c.set("a", b"1")
    for _ in range(3):
        c.get("a")
    c.get("missing")
    c.close()
    m = samples(proxy.extra["admin"])
    assert m[("cacheproxy_requests_total", (("command", "get"), ("protocol", "text"), ("result", "hit")))] == 3
    assert m[("cacheproxy_requests_total", (("command", "get"), ("protocol", "text"), ("result", "miss")))] == 1
    assert m[("cacheproxy_requests_total", (("command", "set"), ("protocol", "text"), ("result", "stored")))] == 1
    assert m[("cacheproxy_cache_lookups_total", (("level", "l1"), ("result", "hit")))] == 3
    assert m[("cacheproxy_request_duration_seconds_count", (("command", "get"),))] == 4
    assert m[("cacheproxy_client_connections_total", ())] >= 1
    assert m[("cacheproxy_bytes_received_total", ())] > 0
    assert m[("cacheproxy_bytes_sent_total", ())] > 0
    assert m[("cacheproxy_backend_up", (("backend", "l1"),))] == 1


def test_health_and_readiness(proxy):
    assert http_get(f"http://{proxy.extra['admin']}/healthz") == (200, "ok\n")
    assert http_get(f"http://{proxy.extra['admin']}/readyz") == (200, "ready\n")
