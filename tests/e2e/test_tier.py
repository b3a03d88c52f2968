"""The README's example running in real pods: the chart's operator (a pod, under the chart's RBAC)
reconciles `examples/cacheproxy.yaml` into pods that start, pass their probes, share memcached's unix
socket with the proxy, run the proxy non-root on a read-only root filesystem, answer clients through
the Service (kube-proxy) and on each pod's address, and survive `kubectl delete pod` of one member under
load from 1,000 clients without dropping the other pod's clients.
"""

from __future__ import annotations

import time
import uuid

import pytest

from tests.e2e.conftest import Tier, get_json
from tests.e2e.load import Load, get, set_and_get
from tests.support.wait import poll

# The first test also builds the image (minutes when cold) and starts the tier, inside its timeout.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1500)]

LOAD_SECONDS = 20.0
DELETE_AFTER_SECONDS = 4.0
CLIENTS_ON_SURVIVOR = 500  # 1,000 clients in all
CLIENTS_ON_VICTIM = 250
CLIENTS_THROUGH_SERVICE = 250

IN_POD_CHECK = """
import errno, os, socket
print("uid", os.getuid())
try:
    open("/rootfs-write-probe", "w")
    print("rootfs writable")
except OSError as exc:
    print("rootfs", errno.errorcode[exc.errno])
s = socket.socket(socket.AF_UNIX)
s.connect("/var/run/cacheproxy/l1.sock")
s.sendall(b"version\\r\\n")
print("l1", s.recv(100).decode().strip())
"""


def test_pods_run_the_proxy_and_memcached_and_pass_their_probes(tier: Tier) -> None:
    pods = tier.wait_ready(2)
    assert sorted(pod["metadata"]["name"] for pod in pods) == [f"{tier.name}-0", f"{tier.name}-1"]  # StatefulSet
    for pod in pods:
        spec = pod["spec"]
        containers = {c["name"]: c for c in spec["containers"] + spec.get("initContainers", [])}
        assert set(containers) == {"memcached", "cacheproxy"}, containers.keys()
        # memcached is a native sidecar: started before the proxy, stopped after it
        assert containers["memcached"].get("restartPolicy") == "Always"
        assert containers["cacheproxy"]["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert containers["cacheproxy"]["livenessProbe"]["httpGet"]["path"] == "/healthz"
        status = pod["status"]
        statuses = {s["name"]: s for s in status["containerStatuses"] + status.get("initContainerStatuses", [])}
        for name, state in statuses.items():
            assert state["ready"] and "running" in state["state"], (name, state)
        # the liveness probe never failed (memcached may have been restarted on purpose by another test)
        assert statuses["cacheproxy"]["restartCount"] == 0, statuses["cacheproxy"]
        # memcached listens only on the socket in the shared emptyDir, never on TCP
        args = containers["memcached"]["args"]
        assert args[args.index("-s") + 1] == "/var/run/cacheproxy/l1.sock"


def test_proxy_is_non_root_on_a_read_only_root_and_shares_memcached_socket(tier: Tier) -> None:
    for pod in tier.wait_ready(2):
        name = pod["metadata"]["name"]
        security = {c["name"]: c["securityContext"] for c in pod["spec"]["containers"]}["cacheproxy"]
        assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
        assert security["readOnlyRootFilesystem"] is True and security["runAsNonRoot"] is True
        out = tier.exec(name, "cacheproxy", "python3", "-c", IN_POD_CHECK)
        assert f"uid {security['runAsUser']}" in out and security["runAsUser"] != 0, out
        assert "rootfs EROFS" in out, out
        assert "l1 VERSION 1.6" in out, out  # memcached, reached over the unix socket from the proxy's container


def test_clients_get_answers_through_the_service_and_on_each_pod(tier: Tier) -> None:
    tier.wait_ready(2)
    value = uuid.uuid4().hex.encode()
    assert set_and_get(tier.service_address(), "e2e:service", value) == value
    for pod, address in tier.pod_addresses().items():
        key = f"e2e:{pod}"
        assert set_and_get(address, key, value + pod.encode()) == value + pod.encode()
        assert get(address, "e2e:never-set") is None


def test_deleting_a_pod_under_load_keeps_the_other_pods_clients_and_the_pod_comes_back(tier: Tier) -> None:
    pods = tier.wait_ready(2)
    victim, survivor = (pod["metadata"]["name"] for pod in pods)
    victim_uid = pods[0]["metadata"]["uid"]
    addresses = tier.pod_addresses()
    load = Load([("survivor", addresses[survivor], CLIENTS_ON_SURVIVOR, False),
                 ("victim", addresses[victim], CLIENTS_ON_VICTIM, False),
                 ("service", tier.service_address(), CLIENTS_THROUGH_SERVICE, True)], seconds=LOAD_SECONDS)
    load.start()
    time.sleep(DELETE_AFTER_SECONDS)  # the load runs for a fixed window; the deletion lands inside it
    deleted_at = time.monotonic()
    tier.cluster.kubectl("delete", "pod", victim, "-n", tier.namespace, "--wait=false")
    load.join(timeout=LOAD_SECONDS + 30)
    assert not load.is_alive() and load.error is None, load.error

    survivors = load.group("survivor")
    assert all(c.failure is None for c in survivors), [c.failure for c in survivors if c.failure][:5]
    assert all(c.ops >= 10 for c in survivors), sorted(c.ops for c in survivors)[:5]
    # the survivor's only error answers are for keys the deleted pod owns on the ring, while it is away
    errors = {answer for c in survivors for answer in c.degraded_answers}
    assert all(victim.encode() in answer or answer == b"miss" for answer in errors), errors
    # the deleted pod's clients were served until the deletion began
    assert all(c.failed_at is None or c.failed_at >= deleted_at for c in load.group("victim"))
    # through the Service, clients keep getting answers to the end (reconnecting if their pod went away)
    service = load.group("service")
    ended = deleted_at - DELETE_AFTER_SECONDS + LOAD_SECONDS
    assert all(c.last_ok >= ended - 3 for c in service), [(c.last_ok - ended, c.failure) for c in service][:5]

    # the StatefulSet recreates the pod under the same name; the new one serves
    new_pods = {pod["metadata"]["name"]: pod for pod in tier.wait_ready(2)}
    assert set(new_pods) == {victim, survivor} and new_pods[victim]["metadata"]["uid"] != victim_uid
    value = b"after-" + victim.encode()
    assert set_and_get(tier.pod_addresses()[victim], "e2e:replacement", value) == value


def test_the_cacheproxy_status_reports_the_ready_tier(tier: Tier) -> None:
    tier.wait_ready(2)

    def ready_condition() -> dict | None:
        status = get_json(tier.cluster, "cacheproxy", tier.name, "-n", tier.namespace).get("status", {})
        conditions = {c["type"]: c for c in status.get("conditions", [])}
        ready = conditions.get("Ready")
        return ready if ready and ready["status"] == "True" else None

    poll(ready_condition, timeout=60, what="CacheProxy Ready condition")
