"""Pure pieces of the reconcile: status conditions, the subset comparison, retries, coalescing, RBAC."""

from __future__ import annotations

import threading

import pytest
from cacheproxy_operator import rbac, reconcile
from cacheproxy_operator.handlers import CHILD_RESOURCES, Coalescer
from cacheproxy_operator.kube import retrying
from cacheproxy_operator.reconcile import is_subset, with_applied_hash
from cacheproxy_operator.spec import with_defaults
from cacheproxy_operator.status import Observation, compute_status, endpoints, pod_problems, transitions
from kubernetes.client.exceptions import ApiException

SPEC = with_defaults({"replicas": 2})
T0, T1 = "2030-01-01T00:00:00Z", "2030-01-01T00:01:00Z"


def deployment(ready: int, updated: int = 2, replicas: int = 2, generation: int = 1) -> dict:
    return {
        "metadata": {"generation": generation},
        "status": {
            "observedGeneration": generation,
            "readyReplicas": ready,
            "updatedReplicas": updated,
            "replicas": replicas,
        },
    }


def pod(ip: str, ready: bool) -> dict:
    return {
        "metadata": {},
        "status": {"podIP": ip, "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }


def conditions(status: dict) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}


def test_ready_when_all_replicas_ready() -> None:
    status = compute_status(Observation(3, SPEC, deployment(2), [pod("10.0.0.2", True), pod("10.0.0.1", True)]), {}, T0)
    assert conditions(status)["Ready"] == ("True", "AllReplicasReady")
    assert conditions(status)["Progressing"] == ("False", "RolloutComplete")
    assert conditions(status)["Degraded"] == ("False", "AsExpected")
    assert status["phase"] == "Ready" and status["observedGeneration"] == 3
    assert status["endpoints"] == ["10.0.0.1:11211", "10.0.0.2:11211"]


def test_progressing_until_ready_and_rolled_out() -> None:
    status = compute_status(Observation(1, SPEC, deployment(1), []), {}, T0)
    assert conditions(status)["Ready"] == ("False", "ReplicasNotReady")
    assert status["phase"] == "Progressing"
    stale = compute_status(Observation(1, SPEC, deployment(2, updated=1, replicas=3), []), {}, T0)
    assert conditions(stale)["Ready"][0] == "False"


def test_invalid_spec_is_degraded_with_the_reason() -> None:
    status = compute_status(Observation(2, SPEC, None, [], spec_errors=["proxy.orca is l1l2 but ..."]), {}, T0)
    assert conditions(status)["Degraded"] == ("True", "InvalidSpec")
    assert status["phase"] == "Invalid"
    assert ("Warning", "InvalidSpec", "proxy.orca is l1l2 but ...") in transitions({}, status)


def test_unchanged_observation_gives_identical_status_and_no_events() -> None:
    obs = Observation(1, SPEC, deployment(2), [pod("10.0.0.1", True)])
    first = compute_status(obs, {}, T0)
    second = compute_status(obs, first, T1)
    assert second == first
    assert transitions(first, second) == []
    flipped = compute_status(Observation(1, SPEC, deployment(1), []), first, T1)
    ready = next(c for c in flipped["conditions"] if c["type"] == "Ready")
    assert ready["lastTransitionTime"] == T1
    assert ("Warning", "NotReady", "1/2 replicas ready") in transitions(first, flipped)


def test_endpoints_skip_unready_terminating_and_ipless_pods() -> None:
    terminating = pod("10.0.0.9", True)
    terminating["metadata"]["deletionTimestamp"] = T0
    pods = [
        pod("10.0.0.1", True),
        pod("10.0.0.2", False),
        terminating,
        {"metadata": {}, "status": {}},
        pod("fd00::1", True),
    ]
    assert endpoints(pods, 11211) == ["10.0.0.1:11211", "[fd00::1]:11211"]


def test_subset_tolerates_server_defaults_and_canonical_quantities() -> None:
    want = {
        "spec": {
            "replicas": 2,
            "template": {"resources": {"limits": {"memory": "1024Mi"}}},
            "publishNotReadyAddresses": False,
            "emptyDir": {},
            "list": [{"a": 1}],
        }
    }
    have = {
        "spec": {
            "replicas": 2,
            "extra": "x",
            "template": {"resources": {"limits": {"memory": "1Gi"}}},
            "emptyDir": {},
            "list": [{"a": 1, "protocol": "TCP"}],
        }
    }
    assert is_subset(want, have)
    assert not is_subset({"spec": {"replicas": 3}}, have)
    assert not is_subset({"spec": {"list": [{"a": 1}, {"a": 2}]}}, have)
    assert not is_subset({"spec": {"template": {"resources": {"limits": {"memory": "2Gi"}}}}}, have)
    assert not is_subset({"spec": {"missing": "value"}}, have)


def test_applied_hash_changes_when_a_field_is_removed() -> None:
    full = {"metadata": {"name": "x"}, "spec": {"nodeSelector": {"a": "b"}}}
    bare = {"metadata": {"name": "x"}, "spec": {}}
    key = "cacheproxy.io/applied-hash"
    assert (
        with_applied_hash(full)["metadata"]["annotations"][key]
        != with_applied_hash(bare)["metadata"]["annotations"][key]
    )


def test_conflicts_are_retried_and_other_errors_are_not() -> None:
    calls = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ApiException(status=409, reason="Conflict")
        return "done"

    assert retrying(flaky, sleep=lambda _: None) == "done" and len(calls) == 3

    def forbidden() -> None:
        calls.append(1)
        raise ApiException(status=403, reason="Forbidden")

    calls.clear()
    with pytest.raises(ApiException):
        retrying(forbidden, sleep=lambda _: None)
    assert len(calls) == 1


def test_retries_give_up_after_the_last_attempt() -> None:
    calls = []

    def always_conflict() -> None:
        calls.append(1)
        raise ApiException(status=409, reason="Conflict")

    with pytest.raises(ApiException):
        retrying(always_conflict, attempts=4, sleep=lambda _: None)
    assert len(calls) == 4


def test_coalescer_runs_once_more_for_requests_arriving_meanwhile() -> None:
    coalescer = Coalescer()
    started, release = threading.Event(), threading.Event()
    runs = []

    def slow() -> None:
        runs.append(1)
        if len(runs) == 1:
            started.set()
            assert release.wait(10)

    worker = threading.Thread(target=coalescer.run, args=(("ns", "a"), slow))
    worker.start()
    assert started.wait(10)
    assert coalescer.run(("ns", "a"), slow) is False  # taken: marked dirty instead
    assert coalescer.run(("ns", "a"), slow) is False
    assert coalescer.run(("ns", "b"), lambda: None) is True  # other keys are independent
    release.set()
    worker.join(10)
    assert len(runs) == 2  # the two requests collapsed into one rerun


def test_rbac_rules_cover_every_child_kind_and_grant_no_wildcards() -> None:
    granted = {
        (group, resource): set(rule["verbs"])
        for rule in rbac.RULES
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    }
    children = [("", "configmaps"), ("", "services"), ("apps", "statefulsets"), ("", "serviceaccounts"),
                ("rbac.authorization.k8s.io", "roles"), ("rbac.authorization.k8s.io", "rolebindings")]
    pruned = [("policy", "poddisruptionbudgets"), ("networking.k8s.io", "networkpolicies"),
              ("monitoring.coreos.com", "servicemonitors"), ("cert-manager.io", "certificates")]
    for key in children + pruned:
        assert {"get", "create", "patch"} <= granted[key]  # reconcile.ensure: get, then server-side apply
    for key in children:  # removed with their CacheProxy by the garbage collector (ownerReferences)
        assert "delete" not in granted[key]
    for key in pruned:  # reconcile.prune: what a spec turns off
        assert {"list", "delete"} <= granted[key]
    assert granted[("apps", "deployments")] == {"get", "delete"}  # migration only
    assert granted[("", "pods")] == {"list", "watch"}
    assert granted[("cacheproxy.io", "cacheproxies/status")] == {"get", "patch"}
    assert all("*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"] for rule in rbac.RULES)
    assert not any("update" in rule["verbs"] for rule in rbac.RULES)
    # Secrets: get only (each by the name a spec gives), never list or watch; ServiceMonitors and
    # cert-manager's Certificates are children like the others but resynced, never watched
    assert granted[("", "secrets")] == {"get"}
    for key in [("monitoring.coreos.com", "servicemonitors"), ("cert-manager.io", "certificates")]:
        assert granted[key] == {"get", "list", "create", "patch", "delete"}
    assert rbac.RULES == rbac.NAMESPACED_RULES + rbac.CLUSTER_RULES


def test_kopf_watches_only_built_in_child_kinds() -> None:
    """kopf stops the operator when a watched kind's CRD is deleted under its watch (the re-watch answers
    404): ServiceMonitors and Certificates are kept right by the resync instead."""
    groups = {"" if api == "v1" else api.split("/")[0] for api, _ in CHILD_RESOURCES}
    assert groups == {"", "apps", "policy", "networking.k8s.io", "rbac.authorization.k8s.io"}


def waiting_pod(name: str, container: str, reason: str, message: str = "", init: bool = False) -> dict:
    status = {"name": container, "state": {"waiting": {"reason": reason, "message": message}}}
    key = "initContainerStatuses" if init else "containerStatuses"
    return {"metadata": {"name": name}, "status": {key: [status]}}


def test_pods_that_cannot_run_make_the_tier_degraded_with_the_cause() -> None:
    pull = waiting_pod("cache-1", "cacheproxy", "ImagePullBackOff", 'Back-off pulling image "x:1"')
    status = compute_status(Observation(1, SPEC, deployment(1), [pod("10.0.0.1", True), pull]), {}, T0)
    assert conditions(status)["Degraded"] == ("True", "ImagePullFailing")
    message = next(c["message"] for c in status["conditions"] if c["type"] == "Degraded")
    assert message == 'pod cache-1 container cacheproxy: ImagePullBackOff: Back-off pulling image "x:1"'
    assert status["phase"] == "Degraded"
    assert ("Warning", "ImagePullFailing", message) in transitions({}, status)
    crash = waiting_pod("cache-0", "memcached", "CrashLoopBackOff", init=True)  # a native sidecar
    unschedulable = {
        "metadata": {"name": "cache-2"},
        "status": {"conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                                   "message": "0/3 nodes are available"}]},
    }
    assert pod_problems([unschedulable, crash]) == [
        ("CrashLooping", "pod cache-0 container memcached: CrashLoopBackOff"),
        ("Unschedulable", "pod cache-2 unschedulable: 0/3 nodes are available"),
    ]
    assert pod_problems([waiting_pod("cache-0", "cacheproxy", "ContainerCreating")]) == []  # just starting
    many = [waiting_pod(f"cache-{i}", "cacheproxy", "ErrImagePull") for i in range(5)]
    degraded = compute_status(Observation(1, SPEC, deployment(0), many), {}, T0)
    assert next(c["message"] for c in degraded["conditions"] if c["type"] == "Degraded").endswith("(and 2 more)")


def test_default_logging_is_quiet_and_verbose_is_not() -> None:
    import logging

    from cacheproxy_operator.cli import quiet_logs

    names = ("kopf.objects", "aiohttp.access")
    before = {name: logging.getLogger(name).level for name in names}
    try:
        quiet_logs(verbose=False)
        assert all(logging.getLogger(name).level == logging.WARNING for name in names)
        for name in names:
            logging.getLogger(name).setLevel(logging.NOTSET)
        quiet_logs(verbose=True)
        assert all(logging.getLogger(name).level == logging.NOTSET for name in names)
    finally:
        for name, level in before.items():
            logging.getLogger(name).setLevel(level)


def test_observe_reads_each_waited_pods_ring_and_treats_silence_as_not_yet() -> None:
    from cacheproxy_operator.manifests import Owner
    from cacheproxy_operator.membership import Observed, Report, Timing, advance, initial
    from cacheproxy_operator.reconcile import observe

    owner = Owner(name="cache", namespace="apps", uid="u")
    preparing = advance(initial(3, 0.0), 2, Observed(), 1.0, Timing(600)).state
    pods = [{"metadata": {"name": f"cache-{i}"}, "status": {"podIP": f"10.0.0.{i}"}} for i in range(3)]
    gone = {"metadata": {"name": "cache-2", "deletionTimestamp": "2030-01-01T00:00:00Z"}, "status": {}}
    other = {"metadata": {"name": "cache-web-0"}, "status": {}}
    answers = {"10.0.0.0": {"generation": 2, "warmup_until": 1796190000.5}, "10.0.0.1": {"generation": "2"},
               "10.0.0.2": None}
    asked = []

    def fetch(pod: dict, port: int) -> dict | None:
        asked.append((pod["status"]["podIP"], port))
        return answers[pod["status"]["podIP"]]

    seen = observe(owner, preparing, [*pods, other], 9150, fetch)
    assert seen == Observed({0: Report(2)}, frozenset({0, 1, 2}))
    assert sorted(asked) == [("10.0.0.0", 9150), ("10.0.0.1", 9150), ("10.0.0.2", 9150)]
    without = observe(owner, preparing, [*pods[:2], gone], 9150, fetch)
    assert 2 not in without.reports and without.pods == {0, 1}  # a terminating pod does not count
    stable = observe(owner, initial(3, 0.0), pods, 9150, fetch)
    assert stable == Observed({}, frozenset({0, 1, 2}))  # Stable asks nobody


def test_a_ring_change_held_past_its_deadline_is_degraded_naming_the_pods() -> None:
    from cacheproxy_operator.manifests import Owner
    from cacheproxy_operator.membership import Observed, Report, Timing, advance, initial
    from cacheproxy_operator.reconcile import ring_stall

    owner = Owner(name="cache", namespace="apps", uid="u")
    timing = Timing(600, 300)
    preparing = advance(initial(3, 0.0), 2, Observed(), 0.0, timing).state
    silent = Observed({0: Report(2), 1: Report(2)}, frozenset({0, 1, 2}))
    crashing = {"metadata": {"name": "cache-2"}, "status": {"containerStatuses": [
        {"name": "cacheproxy", "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}}
    assert ring_stall(owner, advance(preparing, 2, silent, 299.0, timing), 300, [crashing]) is None
    message = ring_stall(owner, advance(preparing, 2, silent, 300.0, timing), 300, [crashing])
    assert message == ("ring change held in Preparing for over 300s: waiting for cache-2 to report generation 2 "
                       "on GET /ring (pod cache-2 container cacheproxy: CrashLoopBackOff)")
    healthy = compute_status(Observation(1, SPEC, deployment(2), []), {}, T0)
    stalled = compute_status(Observation(1, SPEC, deployment(2), [], ring_stall=message), healthy, T1)
    assert conditions(stalled)["Degraded"] == ("True", "RingStalled") and stalled["phase"] == "Degraded"
    assert ("Warning", "RingStalled", message) in transitions(healthy, stalled)
    assert transitions(stalled, compute_status(Observation(1, SPEC, deployment(2), [], ring_stall=message),
                                               stalled, T1)) == []  # said once
    cleared = compute_status(Observation(1, SPEC, deployment(2), []), stalled, T1)
    assert conditions(cleared)["Degraded"] == ("False", "AsExpected")


def test_the_http_fetcher_reads_a_pods_admin_endpoint() -> None:
    """fetch_ring_http against a stand-in admin endpoint on loopback (the pod IP is 127.0.0.1)."""
    import http.server
    import json as json_module

    from cacheproxy_operator.reconcile import fetch_ring_http

    body = {"/ring": json_module.dumps({"generation": 7, "phase": "serve"}).encode(), "/bad": b"not json"}

    class Admin(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            payload = body.get(self.path, b"")
            self.send_response(200 if payload else 404)
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Admin)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        pod = {"metadata": {"name": "cache-0"}, "status": {"podIP": "127.0.0.1"}}
        assert fetch_ring_http(pod, server.server_address[1]) == {"generation": 7, "phase": "serve"}
        body["/ring"] = b"not json"
        assert fetch_ring_http(pod, server.server_address[1]) is None
        del body["/ring"]
        assert fetch_ring_http(pod, server.server_address[1]) is None  # 404
        assert fetch_ring_http({"metadata": {}, "status": {}}, server.server_address[1]) is None  # no IP yet
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
    assert fetch_ring_http(pod, server.server_address[1], timeout=1) is None  # nothing listening


def test_the_status_patch_removes_what_the_new_status_no_longer_has() -> None:
    """A merge patch leaves absent keys alone: a warm-up's end left in status.ring would make the next
    change's warm-up look over before it began."""
    from cacheproxy_operator.reconcile import merge_patch

    before = {"phase": "Ready", "ring": {"step": "WarmingUp", "warmupEndsAt": "2030-01-01T00:00:00Z"}, "old": 1}
    after = {"phase": "Ready", "ring": {"step": "Settling"}}
    assert merge_patch(before, after) == {"old": None, "phase": "Ready", "ring": {"warmupEndsAt": None,
                                                                                  "step": "Settling"}}
    assert merge_patch({}, after) == after


@pytest.mark.parametrize(
    ("answer", "counted"),
    [
        ({"generation": 7, "phase": "serve", "previous": [], "swept_generation": 5}, 5),
        ({"generation": 7, "phase": "serve", "previous": [], "swept_generation": 7}, 7),
        ({"generation": 7, "phase": "serve", "previous": [{"name": "a"}], "swept_generation": 5}, 7),
        ({"generation": 7, "phase": "prepare", "previous": [{"name": "a"}], "swept_generation": 5}, 7),
        ({"generation": 7, "phase": "serve", "previous": []}, 7),
        ({"generation": 7, "phase": "serve", "previous": [{"name": "a"}], "handing_over": True}, 6),
        ({"generation": 7, "phase": "serve", "previous": [{"name": "a"}], "handing_over": False}, 7),
        ({"generation": True}, None),
        (None, None),
    ],
    ids=["settled, sweep running", "settled, swept", "warming up", "preparing", "no sweep reported",
         "handing over", "handed over", "not a generation", "no answer"],
)
def test_a_ring_counts_once_its_hand_over_and_orphan_sweep_are_done(answer, counted) -> None:
    report = reconcile._report(answer)
    assert (report.generation if report is not None else None) == counted
