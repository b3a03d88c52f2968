"""A rolling update of the tier under load, in real pods: (a) a new image tag (the same image
re-tagged in the node's containerd), then (b) a change of a restart-only proxy key
(`proxy.batching.maxBatch`, hashed into the pod template). Each replaces every pod, one at a time,
while clients through the Service and clients pinned to each pod's DNS name do set/get/delete and
reconnect whenever the server closes (tests/e2e/reconnecting.py): no request fails, no answer is
lost in flight and no read is stale. The figures of each phase are printed (`-s` shows them).
"""

from __future__ import annotations

import json
import time

import pytest
import yaml

from tests.chart.cluster import Cluster
from tests.e2e.conftest import EXAMPLE, Tier, apply_tier, get_json, new_namespace
from tests.e2e.reconnecting import ClusterDNS, RollingLoad, Tally, fixed
from tests.e2e.test_ring import proxies_agree
from tests.support.procs import talk
from tests.support.wait import poll

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1500)]

NAME = "roll"
CLIENTS_THROUGH_SERVICE = 150
CLIENTS_PER_POD = 75
PACE_SECONDS = 0.2
ROLLOUT_TIMEOUT = 240.0
NEW_TAG = "localhost/cacheproxy:e2e-rollout"


def rolled_out(tier: Tier, replaced: set[str]) -> dict | None:
    """Every pod replaced (none of the uids REPLACED left) and Ready, the StatefulSet's rollout done."""
    pods = tier.pods()
    sts = get_json(tier.cluster, "statefulset", tier.name, "-n", tier.namespace)
    status = sts.get("status", {})
    replicas = sts["spec"]["replicas"]
    done = (status.get("observedGeneration") == sts["metadata"]["generation"]
            and status.get("updateRevision") == status.get("currentRevision")
            and status.get("updatedReplicas") == replicas == status.get("readyReplicas"))
    fresh = len(pods) == replicas and not replaced & {pod["metadata"]["uid"] for pod in pods}
    return sts if done and fresh and len(tier.ready_pods()) == replicas else None


def roll(tier: Tier, load: RollingLoad, phase: str, patch: dict) -> float:
    """Patch the CacheProxy under load, wait until every pod is replaced; the seconds it took."""
    replaced = {pod["metadata"]["uid"] for pod in tier.pods()}
    load.enter(phase)
    started = time.monotonic()
    tier.cluster.kubectl("patch", "cacheproxy", tier.name, "-n", tier.namespace, "--type=merge", "-p",
                         json.dumps({"spec": patch}))
    poll(lambda: rolled_out(tier, replaced), timeout=ROLLOUT_TIMEOUT, interval=0.5, what=f"{phase} rolled out")
    took = time.monotonic() - started
    load.enter(f"after {phase}")
    # every client served again by the new pods (one pinned to a pod finds its new address through
    # the cluster's DNS, whose answers are cached for up to 5 s)
    poll(lambda: load.served(f"after {phase}") == len(load.clients), timeout=60, what="every client served again")
    return took


def report(load: RollingLoad, phase: str, took: float | None = None) -> Tally:
    total = load.tally(phase)
    print(f"\n{phase}{f' ({took:.0f}s)' if took is not None else ''}: {total.summary()}")
    for group in sorted({client.group for client in load.clients}):
        print(f"  {group}: {load.tally(phase, group).summary()}")
    for line in (total.failures + total.stale)[:10]:
        print(f"  {line}")
    return total


def answers_version(host: str, port: int) -> bool:
    """A fresh connection to HOST:PORT answers memcached's ``version``."""
    try:
        return talk(f"{host}:{port}", b"version\r\n", timeout=5).startswith(b"VERSION ")
    except OSError:
        return False


def test_rolling_updates_under_load_fail_no_request(e2e_cluster: Cluster, operator_release: str,
                                                    images: list[str]) -> None:
    e2e_cluster.ctr("images", "tag", "--force", images[0], NEW_TAG)
    namespace = new_namespace(e2e_cluster, "e2e-roll")
    manifest = yaml.safe_load(EXAMPLE.read_text())
    manifest["metadata"]["name"] = NAME
    tier = apply_tier(e2e_cluster, manifest, namespace)
    try:
        tier.wait_ready(2)
        poll(lambda: proxies_agree(tier, 2), timeout=ROLLOUT_TIMEOUT, what="both proxies on one two-member ring")
        dns = ClusterDNS(e2e_cluster.node_env["NODE_IP"])
        host, port = tier.service_address().rsplit(":", 1)
        # The Service's forwarding is programmed after the pods are ready; until then a connection to
        # its address can reach whatever else answers there (once: an HTTP server's 400). The load
        # starts once fresh connections reach the proxies.
        poll(lambda: all(answers_version(host, int(port)) for _ in range(10)), timeout=60,
             what="the Service forwarding to the proxies")
        groups = [("service", fixed(host, int(port)), CLIENTS_THROUGH_SERVICE)]
        for i in range(2):
            pod_name = f"{NAME}-{i}.{NAME}-headless.{namespace}.svc.cluster.local"
            groups.append((f"pod-{i}", dns.address(pod_name, 11211), CLIENTS_PER_POD))
        load = RollingLoad(groups, pace=PACE_SECONDS, max_seconds=2 * ROLLOUT_TIMEOUT + 120)
        load.start()
        poll(lambda: load.served("start") == len(load.clients), timeout=60, what="the load running")

        took_image = roll(tier, load, "new image tag",
                          {"proxy": {"image": NEW_TAG}, "memcached": {"image": NEW_TAG}})
        took_config = roll(tier, load, "restart-only config key", {"proxy": {"batching": {"maxBatch": 32}}})
        load.halt()
        load.join(timeout=ROLLOUT_TIMEOUT)
        assert not load.is_alive() and load.error is None, load.error

        pods = tier.pods()
        assert all(c["image"] == NEW_TAG for pod in pods for c in pod["spec"]["containers"]), "image not rolled"
        results = {phase: report(load, phase, took) for phase, took in
                   (("start", None), ("new image tag", took_image), ("after new image tag", None),
                    ("restart-only config key", took_config), ("after restart-only config key", None))}
        for phase, tally in results.items():
            assert tally.requests > 0, phase
            assert tally.failures == [], f"{phase}: {len(tally.failures)} failed: {tally.failures[:10]}"
            assert tally.stale == [], f"{phase}: {len(tally.stale)} stale: {tally.stale[:10]}"
            # A draining proxy closes a connection right behind an answer: a client that waits for
            # each answer never loses one in flight, so it never has to guess whether a request ran.
            assert tally.retried == 0, f"{phase}: {tally.retried} answers lost in flight"
    finally:
        e2e_cluster.kubectl("delete", "cacheproxy", NAME, "-n", namespace, "--timeout=120s", check=False,
                            timeout=180)
        e2e_cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
