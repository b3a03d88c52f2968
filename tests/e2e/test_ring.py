"""The ring in real pods: each proxy routes a key to its owner pod, so every key written through any
pod reads back through every other pod and through the Service; `kubectl scale` of the CacheProxy
2 -> 3 -> 2 under 1,000 client connections changes the ring with no stale read, no dropped
connection, no error answer and the hit ratio kept (tests/e2e/ringload.py); keys nobody reads
during the changes are handed over to each new owner and read back once the ring settles; it prints
how long the proxies took to have the new ring and the change to settle.
"""

from __future__ import annotations

import json
import time
import urllib.request
import uuid
from dataclasses import dataclass, field

import pytest

from tests.e2e.conftest import Tier, get_json, is_ready
from tests.e2e.load import get, set_and_get
from tests.e2e.ringload import WINDOW_SECONDS, RingLoad
from tests.support.wait import poll

# The first test also builds the image (minutes when cold) and starts the tier, inside its timeout.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1500)]

KEYS_PER_POD = 40
SCALE_TIMEOUT = 420.0
WARMUP_SECONDS = 20
CLIENTS = 1000  # connections, spread over every ready pod
KEYS = 2000  # preloaded; each written and deleted by one client, read by all
COLD_KEYS = 300  # written before the changes, read only once the ring is back to two
PACE = 1.0  # seconds between one client's requests: about 1,000 requests per second in all
LOAD_SECONDS = 1200.0  # upper bound; the test stops the load once the ring is back to two


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


def ready_addresses(pods: list[dict]) -> list[str]:
    return sorted(f"{pod['status']['podIP']}:11211" for pod in pods if is_ready(pod))


def ring_of_pod(pod: dict) -> dict | None:
    try:
        with urllib.request.urlopen(f"http://{pod['status']['podIP']}:9150/ring", timeout=2) as response:
            return json.load(response)
    except (OSError, ValueError, KeyError):
        return None


@dataclass
class Milestones:
    """Seconds from the scale command until: every proxy reports the new ring's members (prepare),
    every proxy serves by it (reads moved), and the change is settled (status Stable, every proxy on
    the settled ring with no previous, only the wanted pods left)."""

    new_ring: float | None = None
    serving: float | None = None
    settled: float | None = None
    steps: list[tuple[float, str, int]] = field(default_factory=list)  # (seconds, step, generation)


def follow_scale(tier: Tier, load: RingLoad, replicas: int, timeout: float) -> Milestones:
    """`kubectl scale` to REPLICAS, then until settled: point the load at the ready, non-terminating
    pods and poll every pod's GET /ring and the status (about twice a second)."""
    seen = Milestones()
    start = time.monotonic()
    tier.cluster.kubectl("scale", "cacheproxy", tier.name, "-n", tier.namespace, f"--replicas={replicas}")
    while time.monotonic() - start < timeout:
        now = time.monotonic() - start
        pods = [pod for pod in tier.pods() if not pod["metadata"].get("deletionTimestamp")]
        load.set_addresses(ready_addresses(pods))
        ring = get_json(tier.cluster, "cacheproxy", tier.name, "-n", tier.namespace).get("status", {}).get("ring", {})
        if not seen.steps or seen.steps[-1][1:] != (ring.get("step"), ring.get("generation")):
            seen.steps.append((round(now, 1), ring.get("step", "?"), ring.get("generation", 0)))
        answers = [ring_of_pod(pod) for pod in pods]
        if answers and all(answers):
            if all(len(a["members"]) == replicas for a in answers):
                seen.new_ring = seen.new_ring if seen.new_ring is not None else now
                if all(a["phase"] == "serve" for a in answers):
                    seen.serving = seen.serving if seen.serving is not None else now
            if (ring.get("step") == "Stable" and len(pods) == replicas and len(tier.pods()) == replicas
                    and all(a["generation"] == ring["generation"] and not a["previous"] for a in answers)):
                seen.settled = now
                return seen
        time.sleep(0.5)
    raise AssertionError(f"no settled ring of {replicas} within {timeout}s: {seen}")


def test_scale_two_three_two_under_load_reads_nothing_stale(tier: Tier, capsys: pytest.CaptureFixture) -> None:
    """1,000 client connections over every pod write, delete and read preloaded keys while the tier
    scales 2 -> 3 -> 2: no stale read, no dropped connection, no error answer, hits kept."""
    tier.wait_ready(2)
    poll(lambda: proxies_agree(tier, 2), timeout=SCALE_TIMEOUT, what="both proxies on one two-member ring")
    # pods leaving the ring serve as previous owners for warmupSeconds (default 600) before they go
    tier.cluster.kubectl("patch", "cacheproxy", tier.name, "-n", tier.namespace, "--type=merge", "-p",
                         json.dumps({"spec": {"ring": {"warmupSeconds": WARMUP_SECONDS}}}))
    # keys no client touches during the changes: the hand-over, not a read, moves them to each new owner
    cold_address = ready_addresses(tier.ready_pods())[0]
    cold = {f"ring:cold:{i}": uuid.uuid4().hex.encode() for i in range(COLD_KEYS)}
    for key, value in cold.items():
        assert set_and_get(cold_address, key, value) == value
    load = RingLoad(ready_addresses(tier.ready_pods()), clients=CLIENTS, keys=KEYS, seconds=LOAD_SECONDS,
                    pace=PACE)
    load.start()
    try:
        poll(load.preloaded.is_set, timeout=120, what="the keys preloaded")
        poll(lambda: load.requests >= CLIENTS, timeout=120, what="every client under way")
        scaled_at = time.monotonic() - load.started_at
        out = follow_scale(tier, load, 3, SCALE_TIMEOUT)
        back = follow_scale(tier, load, 2, SCALE_TIMEOUT)
        tail = load.requests
        poll(lambda: load.requests >= tail + CLIENTS, timeout=120, what="load on the settled ring")
    finally:
        load.stop()
    assert load.error is None, repr(load.error)
    verdict = load.model.verdict(load.started_at)
    with capsys.disabled():
        print(f"\nring under load: {CLIENTS} clients, {KEYS} preloaded keys, {load.requests} requests "
              f"({verdict.reads} reads judged, {verdict.writes} writes), {load.connects} connects, "
              f"{load.moves} moves")
        for name, seen in (("2 -> 3", out), ("3 -> 2", back)):
            print(f"scale {name}: every proxy on the new ring after {seen.new_ring:.1f}s, serving it after "
                  f"{seen.serving:.1f}s, settled after {seen.settled:.1f}s; steps {seen.steps}")
        print(f"stale reads {len(verdict.stale)}, dropped connections {len(load.dropped)}, error answers "
              f"{len(load.errors)}, hit ratio {verdict.hit_ratio:.4f} overall, "
              f"{verdict.worst_window():.4f} in the worst {WINDOW_SECONDS:g}s window")
        if verdict.stale_at:
            print(f"stale reads at {verdict.stale_at[0] - scaled_at:.1f}..{verdict.stale_at[-1] - scaled_at:.1f}s "
                  "after the first scale command")
    assert verdict.stale == [], verdict.stale[:10]
    assert load.dropped == [], load.dropped[:10]
    assert load.errors == [], load.errors[:10]
    assert verdict.hit_ratio >= 0.95 and verdict.worst_window() >= 0.95, verdict.windows
    assert verdict.reads > 10 * CLIENTS
    lost = unreadable(tier, cold)
    assert lost == [], f"{len(lost)} of {2 * len(cold)} reads of keys nobody read during the changes: {lost[:5]}"
