"""What a user meets around the running tier: cluster DNS names for its Services (CoreDNS: A records
and SRV records of the headless Service), `helm test`, a CacheProxy whose image cannot be pulled, and
how long a pod takes to go away after `kubectl delete pod`.
"""

from __future__ import annotations

import time

import dns.resolver
import pytest
import yaml

from tests.chart.cluster import Cluster
from tests.e2e.conftest import EXAMPLE, RELEASE, Tier, apply_tier, get_json, new_namespace
from tests.support.wait import poll

# The first test also builds the image (minutes when cold) and starts the tier, inside its timeout.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1500)]

POD_GONE_WITHIN_SECONDS = 15.0


def resolver(cluster: Cluster) -> dns.resolver.Resolver:
    """A resolver asking the cluster's DNS server (CoreDNS on the node address) directly."""
    answer = dns.resolver.Resolver(configure=False)
    answer.nameservers = [cluster.node_env["NODE_IP"]]
    answer.lifetime = 5
    return answer


def test_cluster_dns_serves_the_tier_services_and_each_pod_behind_the_headless_one(tier: Tier) -> None:
    pods = tier.wait_ready(2)
    ask = resolver(tier.cluster)
    domain = f"{tier.namespace}.svc.cluster.local"
    service_ip = tier.service_address().rsplit(":", 1)[0]
    assert [r.address for r in ask.resolve(f"{tier.name}.{domain}", "A")] == [service_ip]

    pod_ips = {pod["status"]["podIP"] for pod in pods}

    def headless_ips() -> set[str] | None:
        found = {r.address for r in ask.resolve(f"{tier.name}-headless.{domain}", "A")}
        return found if found == pod_ips else None
    poll(headless_ips, timeout=30, what="headless A records = pod IPs")
    srv = ask.resolve(f"_memcache._tcp.{tier.name}-headless.{domain}", "SRV")
    assert {r.port for r in srv} == {11211} and len(srv) == len(pods)
    targets = {ip for r in srv for ip in (a.address for a in ask.resolve(r.target.to_text(), "A"))}
    assert targets == pod_ips


def test_helm_test_reaches_the_operator_through_its_service_name(e2e_cluster: Cluster, operator_release: str) -> None:
    result = e2e_cluster.helm("test", RELEASE, "-n", operator_release, "--timeout", "120s", timeout=180)
    assert "Phase:          Succeeded" in result.stdout or "Succeeded" in result.stdout, result.stdout


def test_an_image_that_cannot_be_pulled_shows_in_the_status(e2e_cluster: Cluster, operator_release: str) -> None:
    namespace = new_namespace(e2e_cluster, "e2e-pull")
    manifest = yaml.safe_load(EXAMPLE.read_text())
    manifest["metadata"]["name"] = "unpullable"
    manifest["spec"]["replicas"] = 1
    manifest["spec"]["proxy"] = {"image": "localhost/cacheproxy:no-such-tag", "imagePullPolicy": "Never"}
    broken = apply_tier(e2e_cluster, manifest, namespace)
    try:
        def reported() -> str | None:
            status = get_json(e2e_cluster, "cacheproxy", broken.name, "-n", namespace).get("status", {})
            text = " ".join(f"{c.get('reason')} {c.get('message')}" for c in status.get("conditions", []))
            return text if "ErrImageNeverPull" in text or "image" in text.lower() else None
        poll(reported, timeout=30, what="the pull failure in the CacheProxy status")
    finally:
        e2e_cluster.kubectl("delete", "cacheproxy", broken.name, "-n", namespace, "--timeout=60s", check=False,
                            timeout=90)
        e2e_cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def test_a_deleted_pod_goes_away_within_its_grace_period(tier: Tier) -> None:
    pods = tier.wait_ready(2)
    victim = pods[0]
    grace = victim["spec"]["terminationGracePeriodSeconds"]
    name = victim["metadata"]["name"]
    started = time.monotonic()
    tier.cluster.kubectl("delete", "pod", name, "-n", tier.namespace, "--wait=true", f"--timeout={grace + 30}s",
                         timeout=grace + 60)
    took = time.monotonic() - started
    print(f"pod {name} deleted in {took:.1f}s (terminationGracePeriodSeconds {grace})")
    assert took <= grace + 10
    # the pod stops as soon as the proxy has drained and memcached has exited, not after a fixed sleep
    assert took <= POD_GONE_WITHIN_SECONDS, f"pod deletion took {took:.0f}s"
    tier.wait_ready(2)
