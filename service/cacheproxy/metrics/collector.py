"""Turns :data:`~cacheproxy.metrics.stats.STATS` (or several workers' snapshots) into Prometheus
metric families, only when ``/metrics`` is scraped."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from .. import __version__, compiled
from .stats import BUCKETS

UPKEEP = ("swept_generation", "handing_over", "handed_over_generation")  # /ring's, from the worker that sweeps


def merge(snapshots: Iterable[dict]) -> dict:
    """Sum worker snapshots: counters and gauges add; ``backend_up`` and ``ring_member_up`` take the
    minimum, the ring's size and generation the maximum, and /ring's view is the one with the lowest
    generation (what every worker has applied), with the sweep and hand-over as the one worker
    that runs them reports them (the others report none)."""
    total: dict = {}
    upkeep: dict | None = None
    for snap in snapshots:
        for key, value in snap.items():
            if key == "orca":
                total[key] = value
            elif key == "ring_view":  # the lowest generation: the pod has applied what every worker has
                kept = total.get(key)
                if value and value.get("swept_generation") is not None:
                    upkeep = {k: value.get(k) for k in UPKEEP}
                if value and (not kept or value["generation"] < kept["generation"]):
                    total[key] = value
                else:
                    total[key] = kept
            elif key == "config_watch_up":  # every worker's: the lowest
                total[key] = min(total.get(key, value), value)
            elif key in ("ring_members", "ring_generation", "ring_swept_generation"):
                total[key] = max(total.get(key, 0), value)
            elif key in ("latency", "batch_sizes", "ring_latency", "gc_pauses"):
                acc = total.setdefault(key, {})
                for label, (counts, s) in value.items():
                    old = acc.get(label, ([0] * len(counts), 0.0))
                    acc[label] = ([a + b for a, b in zip(old[0], counts, strict=True)], old[1] + s)
            elif key in ("backend_up", "ring_member_up"):
                acc = total.setdefault(key, {})
                for label, up in value.items():
                    acc[label] = min(acc.get(label, up), up)
            elif key == "client_connections_max":
                total[key] = total.get(key, 0) + value
            elif isinstance(value, dict):
                acc = total.setdefault(key, defaultdict(int))
                for label, n in value.items():
                    acc[label] += n
            else:
                total[key] = total.get(key, 0) + value
    if upkeep is not None and total.get("ring_view"):
        total["ring_view"] = {**total["ring_view"], **upkeep}
    return total


def _histogram(name: str, doc: str, label: str, data: dict) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, doc, labels=[label])
    for value, (counts, total) in sorted(data.items()):
        cumulative, buckets = 0, []
        for bound, n in zip(BUCKETS, counts, strict=False):
            cumulative += n
            buckets.append((repr(bound), cumulative))
        cumulative += counts[-1]
        buckets.append(("+Inf", cumulative))
        family.add_metric([value], buckets, total)
    return family


class StatsCollector(Collector):
    """A prometheus-client collector over a snapshot source (this process or all workers)."""

    def __init__(self, source: Callable[[], dict]) -> None:
        self.source = source

    def collect(self):
        s = self.source()
        c = CounterMetricFamily("cacheproxy_requests", "Client requests by protocol, command and result",
                                labels=["protocol", "command", "result"])
        for (proto, cmd, result), n in sorted(s["requests"].items()):
            c.add_metric([proto, cmd, result], n)
        yield c
        yield _histogram("cacheproxy_request_duration_seconds", "Time from parse to answer, per command",
                         "command", s["latency"])
        c = CounterMetricFamily("cacheproxy_cache_lookups", "Key lookups per cache level and result",
                                labels=["level", "result"])
        for (level, result), n in sorted(s["lookups"].items()):
            c.add_metric([level, result], n)
        yield c
        yield GaugeMetricFamily("cacheproxy_client_connections", "Open client connections",
                                value=s["client_connections"])
        yield CounterMetricFamily("cacheproxy_client_connections", "Client connections accepted",
                                  value=s["client_connections_total"])
        yield GaugeMetricFamily("cacheproxy_client_connections_max", "Configured client connection limit",
                                value=s["client_connections_max"])
        g = GaugeMetricFamily("cacheproxy_backend_connections", "Open backend connections", labels=["backend"])
        for name, n in sorted(s["backend_connections"].items()):
            g.add_metric([name], n)
        yield g
        g = GaugeMetricFamily("cacheproxy_backend_up", "1 while the backend answers health checks",
                              labels=["backend"])
        for name, n in sorted(s["backend_up"].items()):
            g.add_metric([name], n)
        yield g
        c = CounterMetricFamily("cacheproxy_backend_errors", "Backend errors by kind", labels=["backend", "kind"])
        for (name, kind), n in sorted(s["backend_errors"].items()):
            c.add_metric([name, kind], n)
        yield c
        c = CounterMetricFamily("cacheproxy_backend_reconnects", "Backend reconnections", labels=["backend"])
        for name, n in sorted(s["backend_reconnects"].items()):
            c.add_metric([name], n)
        yield c
        yield CounterMetricFamily("cacheproxy_bytes_received", "Bytes read from clients",
                                  value=s["bytes_received"])
        yield CounterMetricFamily("cacheproxy_bytes_sent", "Bytes written to clients", value=s["bytes_sent"])
        c = CounterMetricFamily("cacheproxy_errors", "Errors answered to clients by kind", labels=["kind"])
        for kind, n in sorted(s["errors"].items()):
            c.add_metric([kind], n)
        yield c
        yield CounterMetricFamily("cacheproxy_connection_faults",
                                  "Unexpected exceptions that closed a client connection",
                                  value=s["connection_faults"])
        yield CounterMetricFamily("cacheproxy_l2_promotions", "L2 hits written back to L1",
                                  value=s["l2_promotions"])
        yield CounterMetricFamily("cacheproxy_chunk_misses", "Chunked reads with a chunk missing",
                                  value=s["chunk_misses"])
        yield CounterMetricFamily("cacheproxy_chunk_token_mismatches",
                                  "Chunked reads that saw a torn or concurrent write",
                                  value=s["chunk_token_mismatches"])
        yield _histogram("cacheproxy_batch_size", "Requests per batched backend write", "backend",
                         s["batch_sizes"])
        yield _histogram("cacheproxy_gc_pause_seconds", "Garbage collections (the proxy's timer runs them all): "
                         "how long each held the event loop", "kind", s["gc_pauses"])
        yield GaugeMetricFamily("cacheproxy_draining", "1 once a SIGTERM drain has begun", value=s["draining"])
        yield GaugeMetricFamily("cacheproxy_tasks", "asyncio tasks alive (flat unless something leaks)",
                                value=s["tasks"])
        c = CounterMetricFamily("cacheproxy_tls_handshakes",
                                "TLS handshakes on the client port by result (failed: plaintext, stalled past "
                                "tls_handshake_timeout, old protocol, bad or missing client certificate)",
                                labels=["result"])
        for result, n in sorted(s.get("tls_handshakes", {}).items()):
            c.add_metric([result], n)
        yield c
        c = CounterMetricFamily("cacheproxy_auth", "Authentication attempts by protocol (ascii, sasl) and result",
                                labels=["protocol", "result"])
        for (proto, result), n in sorted(s.get("auth", {}).items()):
            c.add_metric([proto, result], n)
        yield c
        yield from _ring_families(s)
        g = GaugeMetricFamily("cacheproxy_info", "Build and mode information", labels=["version", "orca", "build"])
        g.add_metric([__version__, s["orca"], "compiled" if compiled.COMPILED else "pure"], 1)
        yield g


def _counts(name: str, doc: str, labels: list[str], counts: dict) -> CounterMetricFamily:
    """A counter family with a sample per key of COUNTS (a tuple key fills several labels)."""
    c = CounterMetricFamily(name, doc, labels=labels)
    for key, n in sorted(counts.items()):
        c.add_metric(list(key) if isinstance(key, tuple) else [key], n)
    return c


def _ring_families(s: dict) -> Iterable:
    """The ring's families (service/cacheproxy/ring); absent keys (an older worker) read as empty."""
    yield _counts("cacheproxy_ring_forwarded", "Requests forwarded to a ring member's peer port", ["member"],
                  s.get("ring_forwarded", {}))
    yield _counts("cacheproxy_ring_errors", "Forwarded requests that failed, by member and kind", ["member", "kind"],
                  s.get("ring_errors", {}))
    yield _histogram("cacheproxy_ring_forward_duration_seconds", "Time from forwarding to the member's answer",
                     "member", s.get("ring_latency", {}))
    g = GaugeMetricFamily("cacheproxy_ring_member_up", "1 while a ring member answers, 0 while marked down",
                          labels=["member"])
    for name, n in sorted(s.get("ring_member_up", {}).items()):
        g.add_metric([name], n)
    yield g
    yield GaugeMetricFamily("cacheproxy_ring_members", "Members of the ring in use", value=s.get("ring_members", 0))
    yield GaugeMetricFamily("cacheproxy_ring_generation", "Generation of the ring in use",
                            value=s.get("ring_generation", 0))
    yield GaugeMetricFamily("cacheproxy_ring_swept_generation", "Last ring generation whose orphan sweep "
                            "finished (GET /ring's swept_generation)", value=s.get("ring_swept_generation", 0))
    yield CounterMetricFamily("cacheproxy_ring_changes", "Ring changes applied (members, generation or phase)",
                              value=s.get("ring_changes", 0))
    yield _counts("cacheproxy_ring_owner_down", "Requests for keys of a member marked down, by answer", ["answer"],
                  s.get("ring_owner_down", {}))
    yield _counts("cacheproxy_ring_waits", "Requests that waited for a member that went down (parked), and how "
                  "the wait ended: sent once it was back (resumed) or failed (expired)", ["event"],
                  s.get("ring_waits", {}))
    yield _counts("cacheproxy_ring_warmup", "Warm-up reads of previous owners (read_hit, read_miss), fills of new "
                  "owners (fill), fills undone by a racing delete (fill_undone); moved keys the hand-over read "
                  "(handover_listed) and its listings retried (handover_retry); the orphan sweep's keys listed "
                  "(sweep_scanned) and deleted as another member's (sweep_deleted)", ["event"],
                  s.get("ring_warmup", {}))
    yield _counts("cacheproxy_ring_sweep_retries", "Orphan sweeps that stopped and are retried later, by reason: "
                  "memcached's crawler busy or refusing (busy), a connection that failed or closed (failed)",
                  ["reason"], s.get("ring_sweep_retries", {}))
    yield CounterMetricFamily("cacheproxy_ring_previous_invalidations",
                              "Previous owners' copies removed by writes during warm-up or prepare",
                              value=s.get("ring_invalidations", 0))
    yield _counts("cacheproxy_config_reloads", "Config reloads by result (ok, refused)", ["result"],
                  s.get("config_reloads", {}))
    yield _counts("cacheproxy_config_updates", "Config texts offered, by source (file, signal, watch) and result "
                  "(applied, unchanged, superseded, refused)", ["source", "result"], s.get("config_updates", {}))
    yield _counts("cacheproxy_config_watch_events", "Events of the config ConfigMap's watch, by type", ["type"],
                  s.get("config_watch_events", {}))
    yield _counts("cacheproxy_config_watch_reconnects", "Reconnects of the config ConfigMap's watch, by reason",
                  ["reason"], s.get("config_watch_reconnects", {}))
    yield GaugeMetricFamily("cacheproxy_config_watch_up", "1 while the config ConfigMap's watch is open "
                            "(with --workers: in every worker)", value=s.get("config_watch_up", 0))
