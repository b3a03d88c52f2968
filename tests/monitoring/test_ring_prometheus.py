"""A real Prometheus scrapes a real ring (three proxy + memcached pairs) while it forwards, warms up
after a member is added, refuses a broken config, loses a member's memcached for a moment, settles
and sweeps, and has requests wait for a member whose proxy went away; one proxy watches its
ConfigMap through a stand-in API server. Every query of the dashboard's "Ring:" panels returns data."""

from __future__ import annotations

import contextlib
import json
import signal
import threading
import time

from tests.monitoring.apiserver import StandInApiServer
from tests.monitoring.prometheus import ScrapeTarget, finite_values, query, start_prometheus, without_data
from tests.monitoring.test_prometheus import DASHBOARD, substitute
from tests.ring.load import deadline_poll
from tests.ring.tier import Tier
from tests.support.procs import start_memcached, talk

QUERY_DEADLINE_SECONDS = 60.0
TRAFFIC_MAX_SECONDS = 120.0


def ring_queries() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [(f"{panel['title']} / {target['refId']}", substitute(target["expr"]))
            for panel in dashboard["panels"] if panel["title"].startswith("Ring: ") for target in panel["targets"]]



class Traffic(threading.Thread):
    """Paced gets and sets of fresh and old keys through every proxy, until stopped (bounded)."""

    def __init__(self, addrs: list[str]) -> None:
        super().__init__(daemon=True)
        self.addrs, self.stopped = addrs, threading.Event()

    def run(self) -> None:
        end, i = time.monotonic() + TRAFFIC_MAX_SECONDS, 0
        while not self.stopped.is_set() and time.monotonic() < end:
            addr = self.addrs[i % len(self.addrs)]
            keys = [b"t:%d" % (i * 10 + j) for j in range(10)]
            keys += [b"pre:%d" % ((i * 7 + j) % 2000) for j in range(10)]
            with contextlib.suppress(OSError):  # member 1's memcached is killed on purpose meanwhile
                talk(addr, b"".join(b"set %s 0 0 1\r\nx\r\n" % k for k in keys[:5]) + b"get " + b" ".join(keys)
                     + b"\r\ndelete pre:%d\r\nmn\r\n" % (i % 2000), b"MN\r\n", timeout=1.0)
            i += 1
            self.stopped.wait(0.05)


def member_up_everywhere(tier: Tier, member: int) -> bool:
    name = tier.pairs[member].name
    return all(m["state"] == "up" for i in tier.members if i != member
               for m in tier.ring_json(i)["members"] if m["name"] == name)


def test_every_ring_panel_query_returns_data() -> None:
    tier = Tier.start(2, spare=1, warmup_seconds=600)
    apiserver = StandInApiServer()
    prometheus = None
    traffic = None
    try:
        talk(tier.pairs[0].addr, b"".join(b"set pre:%d 0 0 1\r\nv\r\n" % i for i in range(2000)) + b"mn\r\n",
             b"MN\r\n")
        # Member 2 also watches its ConfigMap through the API (the stand-in's watches end at once).
        tier.start_proxy(2, args=("--config-map", "shop/sessions-config"), env=apiserver.env())
        targets = [ScrapeTarget(p.admin, {"namespace": "shop", "pod": f"sessions-{p.index}",
                                          "app_kubernetes_io_instance": "sessions"}) for p in tier.pairs]
        prometheus = start_prometheus(targets)
        traffic = Traffic([p.addr for p in tier.pairs])
        traffic.start()
        # A member added: warm-up reads, fills, invalidations; a ring change.
        tier.members = [0, 1, 2]
        tier.generation += 1
        tier.write(previous=[0, 1], phase="serve")
        deadline_poll(lambda: all(tier.ring_json(i)["generation"] == tier.generation for i in range(3)), 10)
        # A broken config: refused.
        good = tier.config.read_text()
        tier.write(text="ring: [broken\n")
        tier.reload_all()
        deadline_poll(lambda: finite_values(query(prometheus, 'cacheproxy_config_reloads_total{result="refused"}')),
                      20, interval=0.5)
        tier.write(text=good)
        # Member 1's memcached down for a moment: member 1 is marked down, its keys answer misses.
        victim = tier.pairs[1].memcached
        port = int(victim.addr.rsplit(":", 1)[1])
        victim.stop(signal.SIGKILL)
        deadline_poll(lambda: finite_values(query(prometheus, "cacheproxy_ring_owner_down_total")), 20, interval=0.5)
        tier.pairs[1].memcached = start_memcached(port=port)
        # The operator's last step: previous cleared, window over; each member sweeps its orphans.
        tier.generation += 1
        tier.extra["warmup_seconds"] = 0
        tier.write(previous=[], phase="serve")
        deadline_poll(lambda: all(tier.ring_json(i)["swept_generation"] == tier.generation for i in range(3)), 20)
        # Member 1's proxy goes away (as in a rolling update): requests for its keys wait for it.
        deadline_poll(lambda: member_up_everywhere(tier, 1), 20)
        assert tier.pairs[1].proxy is not None
        tier.pairs[1].proxy.stop(signal.SIGKILL)
        deadline_poll(lambda: finite_values(query(prometheus, 'cacheproxy_ring_waits_total{event="parked"}')), 20,
                      interval=0.5)
        tier.start_proxy(1)
        assert apiserver.watches > 0

        pending = without_data(prometheus, dict(ring_queries()), QUERY_DEADLINE_SECONDS)
        assert not pending, f"ring queries without data after {QUERY_DEADLINE_SECONDS}s: {pending}"
    finally:
        if traffic is not None:
            traffic.stopped.set()
            traffic.join(10)
        if prometheus is not None:
            prometheus.stop()
        tier.stop()
        apiserver.stop()
