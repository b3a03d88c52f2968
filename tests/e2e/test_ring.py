"""The ring in real pods: each proxy routes a key to its owner pod, so every key written through any
pod reads back through every other pod and through the Service; `kubectl scale` of the CacheProxy
2 -> 3 -> 2 changes the ring without losing a key written before (reads fall back to the previous
owner while the ring moves, and fill the new one).
"""

from __future__ import annotations

import json
import urllib.request
import uuid

import pytest

from tests.e2e.conftest import Tier, get_json
from tests.e2e.load import get, set_and_get
from tests.support.wait import poll

# The first test also builds the image (minutes when cold) and starts the tier, inside its timeout.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1500)]

KEYS_PER_POD = 40
SCALE_TIMEOUT = 240.0
WARMUP_SECONDS = 20


def write_through_each_pod(tier: Tier, tag: str) -> dict[str, bytes]:
    written = {}
    for pod, address in sorted(tier.pod_addresses().items()):
        for i in range(KEYS_PER_POD):
            key, value = f"ring:{tag}:{pod}:{i}", uuid.uuid4().hex.encode()
            assert set_and_get(address, key, value) == value
            written[key] = value
    return written


def read(address: str, key: str) -> bytes | str | None:
    """The value, None on a miss, or the error the proxy answered."""
    try:
        return get(address, key)
    except (AssertionError, OSError) as exc:
        return str(exc)


def unreadable(tier: Tier, written: dict[str, bytes]) -> list[tuple[str, str, bytes | str | None]]:
    """(pod, key, what it read) where a key does not read back its value through that pod."""
    found = [(pod, key, read(address, key), value) for pod, address in sorted(tier.pod_addresses().items())
             for key, value in written.items()]
    return [(pod, key, got) for pod, key, got, value in found if got != value]


def ring_settled(tier: Tier, replicas: int) -> bool:
    """REPLICAS pods ready, each proxy serving the CacheProxy's current ring with that many members."""
    if len(tier.pods()) != replicas or len(tier.ready_pods()) != replicas:
        return False
    status = get_json(tier.cluster, "cacheproxy", tier.name, "-n", tier.namespace).get("status", {})
    return status.get("readyReplicas") == replicas and status.get("phase") == "Ready"


def rings(tier: Tier) -> dict[str, dict]:
    """Each ready pod's GET /ring (admin port 9150): the ring its proxy applies."""
    answers = {}
    for pod in tier.ready_pods():
        url = f"http://{pod['status']['podIP']}:9150/ring"
        with urllib.request.urlopen(url, timeout=5) as response:
            answers[pod["metadata"]["name"]] = json.load(response)
    return answers


def proxies_agree(tier: Tier, replicas: int) -> dict[str, dict] | None:
    """Every proxy serves the same ring of REPLICAS members with no previous ring left (a settled change)."""
    if not ring_settled(tier, replicas):
        return None
    answers = rings(tier)
    settled = {(a["generation"], a["phase"], len(a["members"]), len(a.get("previous") or [])) for a in answers.values()}
    return answers if len(answers) == replicas and settled == {(next(iter(settled))[0], "serve", replicas, 0)} else None


def test_every_key_written_through_any_pod_reads_back_through_every_other(tier: Tier) -> None:
    tier.wait_ready(2)
    poll(lambda: proxies_agree(tier, 2), timeout=SCALE_TIMEOUT, what="both proxies on one two-member ring")
    written = write_through_each_pod(tier, "any")
    assert unreadable(tier, written) == []
    for key, value in list(written.items())[:10]:
        assert get(tier.service_address(), key) == value


def test_scale_two_three_two_keeps_every_key_readable_through_every_pod(tier: Tier) -> None:
    tier.wait_ready(2)
    poll(lambda: proxies_agree(tier, 2), timeout=SCALE_TIMEOUT, what="both proxies on one two-member ring")
    before = write_through_each_pod(tier, "scale")
    # pods leaving the ring serve as previous owners for warmupSeconds (default 600) before they go
    tier.cluster.kubectl("patch", "cacheproxy", tier.name, "-n", tier.namespace, "--type=merge", "-p",
                         json.dumps({"spec": {"ring": {"warmupSeconds": WARMUP_SECONDS}}}))

    tier.cluster.kubectl("scale", "cacheproxy", tier.name, "-n", tier.namespace, "--replicas=3")
    poll(lambda: ring_settled(tier, 3), timeout=SCALE_TIMEOUT, what="a three-member ring")
    assert unreadable(tier, before) == []
    grown = write_through_each_pod(tier, "grown")
    assert unreadable(tier, grown) == []

    tier.cluster.kubectl("scale", "cacheproxy", tier.name, "-n", tier.namespace, "--replicas=2")
    everything = {**before, **grown}
    # while the ring shrinks, reads through the remaining pods fill their copies from the leaving one
    poll(lambda: not unreadable(tier, everything) or None, timeout=SCALE_TIMEOUT, what="keys readable")
    # the leaving pod goes after the warm-up; then every proxy must drop it (the kubelet delivers the
    # ConfigMap change within about a minute), leaving the tier as it was for the other tests
    poll(lambda: proxies_agree(tier, 2), timeout=SCALE_TIMEOUT, what="back to one two-member ring")
    assert unreadable(tier, everything) == []
