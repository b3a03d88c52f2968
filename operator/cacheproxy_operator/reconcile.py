"""Level-based reconcile of one CacheProxy: make every child match the spec, then report status.

Idempotent by construction: a child is written only when it differs from what the builders want
(its applied-hash annotation or any wanted field), so a second run against a converged tier makes
no writes at all. Child names are fixed by the CacheProxy name, so an operator killed half-way and
restarted can only converge, never duplicate.
"""

from __future__ import annotations

import json
import logging
import os
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kubernetes.client.exceptions import ApiException

from cacheproxy_operator import GROUP, KIND, VERSION
from cacheproxy_operator.kube import Kube, object_path
from cacheproxy_operator.manifests import SERVICE_MONITOR_API, Capabilities, Owner, build
from cacheproxy_operator.manifests.common import APPLIED_HASH_ANNOTATION, MANAGED_BY, content_hash, selector_labels
from cacheproxy_operator.manifests.config import config_hash
from cacheproxy_operator.manifests.ring import member_names, pod_name
from cacheproxy_operator.manifests.security import (
    CERT_MANAGER_API,
    certificate_name,
    required_keys,
    secret_problems,
    tls_secret_name,
    wants_certificate,
)
from cacheproxy_operator.membership import REMOVING_PODS, Decision, Observed, Report, RingState, Timing, advance
from cacheproxy_operator.spec import ImageDefaults, parse_quantity, semantic_errors, with_defaults
from cacheproxy_operator.status import Observation, compute_status, pod_problems, transitions

log = logging.getLogger(__name__)
Emit = Callable[[str, str, str], None]  # (event type, reason, message)
# (pod, admin port) -> the proxy's GET /ring answer, or None when it does not answer
RingFetch = Callable[[dict[str, Any], int], dict[str, Any] | None]
CR_API = f"{GROUP}/{VERSION}"
# Fault injection for the crash-recovery test: pause after each child write so the operator can be
# killed half-way through a reconcile. Never set in production.
STEP_DELAY_ENV = "CACHEPROXY_FAULT_STEP_DELAY"
OBSERVE_WORKERS = 16


class ChildConflict(Exception):
    """A child's name is taken by an object this CacheProxy does not own (yet): retry later."""


@dataclass
class Outcome:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    status: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


def _zero(value: Any) -> bool:
    return value in (None, False, 0, "", {}, [])


def _same_scalar(want: Any, have: Any) -> bool:
    if want == have:
        return True
    if isinstance(want, str | int) and isinstance(have, str | int) and not isinstance(want, bool):
        try:  # the server canonicalises quantities: 1024Mi comes back as 1Gi
            return abs(parse_quantity(str(want)) - parse_quantity(str(have))) < 1e-9
        except ValueError:
            return False
    return False


def is_subset(want: Any, have: Any) -> bool:
    """Whether every field of WANT is present with the same value in HAVE (server defaults ignored).

    Zero values match a missing field because the server omits empty fields when it stores them.
    """
    if isinstance(want, dict):
        if not isinstance(have, dict):
            return _zero(want) and have is None
        return all(
            is_subset(value, have[key]) if key in have and have[key] is not None else _zero(value)
            for key, value in want.items()
        )
    if isinstance(want, list):
        return isinstance(have, list) and len(want) == len(have) and all(map(is_subset, want, have))
    return _same_scalar(want, have)


def with_applied_hash(manifest: dict[str, Any]) -> dict[str, Any]:
    """MANIFEST annotated with a hash of itself, so removed fields are noticed too (they change it)."""
    meta = manifest["metadata"]
    annotations = {**meta.get("annotations", {}), APPLIED_HASH_ANNOTATION: content_hash(manifest)}
    return {**manifest, "metadata": {**meta, "annotations": annotations}}


def _foreign_controller(live: dict[str, Any], owner: Owner) -> dict[str, Any] | None:
    for ref in live["metadata"].get("ownerReferences") or []:
        if ref.get("controller") and ref.get("uid") != owner.uid:
            return ref
    return None


def ensure(kube: Kube, manifest: dict[str, Any], owner: Owner) -> str:
    """Make one child match MANIFEST: 'created', 'updated' or 'unchanged'."""
    manifest = with_applied_hash(manifest)
    meta = manifest["metadata"]
    live = kube.get(manifest["apiVersion"], manifest["kind"], meta["namespace"], meta["name"])
    if live is not None:
        foreign = _foreign_controller(live, owner)
        if foreign is not None:
            raise ChildConflict(
                f"{manifest['kind']} {meta['name']} is controlled by {foreign.get('kind')} "
                f"{foreign.get('name')} ({foreign.get('uid')}); waiting for it to go away"
            )
        annotations = live["metadata"].get("annotations") or {}
        if annotations.get(APPLIED_HASH_ANNOTATION) == meta["annotations"][APPLIED_HASH_ANNOTATION] and is_subset(
            manifest, live
        ):
            return "unchanged"
    kube.apply(manifest)
    return "created" if live is None else "updated"


def prune(kube: Kube, api_version: str, kind: str, owner: Owner) -> list[str]:
    """Delete optional children of KIND this CacheProxy owns but no longer wants."""
    deleted = []
    selector = {"app.kubernetes.io/instance": owner.name, "app.kubernetes.io/managed-by": MANAGED_BY}
    for item in kube.list(api_version, kind, owner.namespace, selector):
        refs = item["metadata"].get("ownerReferences") or []
        if any(ref.get("uid") == owner.uid for ref in refs) and kube.delete(
            api_version, kind, owner.namespace, item["metadata"]["name"]
        ):
            deleted.append(f"{kind}/{item['metadata']['name']}")
    return deleted


def discover(kube: Kube) -> Capabilities:
    return Capabilities(
        service_monitor=kube.serves(SERVICE_MONITOR_API),
        cert_manager=kube.serves(CERT_MANAGER_API),
    )


def monitoring_state(spec: dict[str, Any], caps: Capabilities) -> tuple[str, str, str]:
    if not spec["monitoring"]["serviceMonitor"]["enabled"]:
        return ("False", "Disabled", "monitoring.serviceMonitor.enabled is false")
    if not caps.service_monitor:
        return (
            "False",
            "APINotServed",
            f"{SERVICE_MONITOR_API} is not served by this cluster (install the "
            "Prometheus Operator CRDs); no ServiceMonitor created",
        )
    return ("True", "ServiceMonitorCreated", "ServiceMonitor selects the client Service's metrics port")


def tls_state(owner: Owner, spec: dict[str, Any], caps: Capabilities) -> tuple[str, str, str]:
    """The TLS condition: where the tier's certificate comes from, or why it does not."""
    secret = tls_secret_name(owner, spec)
    if secret is None:
        return ("False", "Disabled", "spec.tls is not set: the client and peer ports are plaintext")
    if not wants_certificate(spec):
        return ("True", "SecretProvided", f"client and peer ports use Secret {secret}")
    if not caps.cert_manager:
        return (
            "False",
            "APINotServed",
            f"{CERT_MANAGER_API} is not served by this cluster (install cert-manager); no Certificate "
            f"created, so Secret {secret} must be provided another way",
        )
    return ("True", "CertificateCreated", f"Certificate {certificate_name(owner)} issues Secret {secret}")


def read_secrets(kube: Kube, owner: Owner, spec: dict[str, Any]) -> dict[str, dict[str, Any] | None]:
    """The Secrets the pods mount, as the server has them (None: not found). Only these are read."""
    return {name: kube.get("v1", "Secret", owner.namespace, name) for name in required_keys(owner, spec)}


def _describe(exc: Exception) -> str:
    if isinstance(exc, ApiException):
        return f"HTTP {exc.status} {exc.reason}: {(exc.body or '')[:300]}"
    return str(exc)


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def fetch_ring_http(pod: dict[str, Any], port: int, timeout: float = 2.0) -> dict[str, Any] | None:
    """GET http://POD_IP:PORT/ring: which ring generation and phase the pod's proxy has applied."""
    ip = (pod.get("status") or {}).get("podIP")
    if not ip:
        return None
    host = f"[{ip}]" if ":" in ip else ip
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/ring", timeout=timeout) as answer:
            report = json.loads(answer.read())
    except (OSError, ValueError):
        return None
    return report if isinstance(report, dict) else None


def _timestamp(text: str | None) -> float:
    if not text:
        return 0.0
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _rfc3339(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def state_from_status(ring: dict[str, Any] | None) -> RingState | None:
    """The membership state kept in status.ring (None for a new CacheProxy or one made before rings)."""
    if not ring or not ring.get("generation") or not ring.get("step"):
        return None
    members = len(ring.get("members") or [])
    return RingState(
        generation=ring["generation"],
        phase=ring.get("phase", "serve"),
        step=ring["step"],
        members=members,
        previous=len(ring.get("previous") or []),
        pods=ring.get("pods", members),
        since=_timestamp(ring.get("stepStartedAt")),
        warmup_ends=_timestamp(ring["warmupEndsAt"]) if ring.get("warmupEndsAt") else None,
    )


def ring_status(owner: Owner, state: RingState, waiting_for: list[int]) -> dict[str, Any]:
    status = {
        "generation": state.generation,
        "phase": state.phase,
        "step": state.step,
        "stepStartedAt": _rfc3339(state.since),
        "members": member_names(owner, state.members),
        "previous": member_names(owner, state.previous),
        "pods": state.pods,
        "waitingFor": [pod_name(owner, i) for i in waiting_for],
    }
    if state.warmup_ends is not None:
        status["warmupEndsAt"] = _rfc3339_ceil(state.warmup_ends)
    return status


def _rfc3339_ceil(seconds: float) -> str:
    """Rounded up to the second: the stored time is never earlier than the one the machine computed."""
    return _rfc3339(float(-(-seconds // 1)))


def ordinal_of(owner: Owner, pod: dict[str, Any]) -> int | None:
    prefix = f"{owner.name}-"
    name = pod["metadata"].get("name", "")
    rest = name[len(prefix):] if name.startswith(prefix) else ""
    return int(rest) if rest.isdigit() else None


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _report(answer: dict[str, Any] | None) -> Report | None:
    """A GET /ring answer as the machine's Report (None: no answer, or no integer generation).
    A settled ring (serve, no previous) counts once the proxy's orphan sweep for it has finished
    (``swept_generation``): until then its memcached may still hold copies of keys another member
    owns, which the next change could hand back. A warming ring counts once the proxy has handed
    its moved keys over to their new owners (``handing_over`` false): closing the window earlier
    would leave the keys not yet pushed (and not read meanwhile) to be a miss. (A proxy that
    reports neither counts at once.)"""
    answer = answer or {}
    generation = answer.get("generation")
    if not _is_int(generation):
        return None
    swept = answer.get("swept_generation")
    settled = answer.get("phase") == "serve" and not answer.get("previous")
    if settled and _is_int(swept) and swept < generation:
        return Report(swept)
    if answer.get("handing_over") is True:
        return Report(generation - 1)
    return Report(generation)


def observe(
    owner: Owner, state: RingState | None, pods: list[dict[str, Any]], port: int, fetch: RingFetch
) -> Observed:
    """Which pod ordinals exist (not being deleted), and the GET /ring of each the step waits on."""
    live = [pod for pod in pods if not pod["metadata"].get("deletionTimestamp")]
    present = frozenset(o for o in (ordinal_of(owner, pod) for pod in live) if o is not None)
    if state is None:
        return Observed({}, present)
    by_name = {pod["metadata"]["name"]: pod for pod in live}

    def report_of(ordinal: int) -> Report | None:
        pod = by_name.get(pod_name(owner, ordinal))
        return _report(fetch(pod, port)) if pod is not None else None

    ordinals = list(state.waits_on())
    if not ordinals:
        return Observed({}, present)
    # in parallel: a pod that does not answer costs one timeout, not one per pod
    with ThreadPoolExecutor(max_workers=min(OBSERVE_WORKERS, len(ordinals))) as pool:
        answers = dict(zip(ordinals, pool.map(report_of, ordinals), strict=True))
    return Observed({i: report for i, report in answers.items() if report is not None}, present)


def ring_stall(owner: Owner, decision: Decision, deadline: float, pods: list[dict[str, Any]]) -> str | None:
    """The Degraded message for a ring change held past the deadline (None: not stalled)."""
    if not decision.stalled:
        return None
    state = decision.state
    names = [pod_name(owner, i) for i in decision.waiting_for]
    waited = "to be removed" if state.step == REMOVING_PODS else f"to report generation {state.generation} on GET /ring"
    message = (f"ring change held in {state.step} for over {deadline:g}s: waiting for "
               f"{', '.join(names)} {waited}")
    causes = [text for _, text in pod_problems([p for p in pods if p["metadata"].get("name") in names])]
    return message + (f" ({'; '.join(causes)})" if causes else "")


def merge_patch(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """A JSON merge patch turning BEFORE into AFTER: keys AFTER no longer has are set to null (a merge
    patch leaves absent keys alone), in nested objects too (e.g. status.ring.warmupEndsAt)."""
    patch: dict[str, Any] = {key: None for key in before if key not in after}
    for key, value in after.items():
        old = before.get(key)
        patch[key] = merge_patch(old, value) if isinstance(value, dict) and isinstance(old, dict) else value
    return patch


def migrate_deployment(kube: Kube, owner: Owner, statefulset: dict[str, Any] | None, pods: int) -> list[str]:
    """Delete the Deployment an earlier operator version made, once the StatefulSet's pods are ready.

    Until then both serve behind the client Service (same pod labels), so clients are never without a
    cache; the Deployment's pods take their cached data with them (the StatefulSet's start cold).
    """
    old = kube.get("apps/v1", "Deployment", owner.namespace, owner.name)
    if old is None or not any(ref.get("uid") == owner.uid for ref in old["metadata"].get("ownerReferences") or []):
        return []
    ready = ((statefulset or {}).get("status") or {}).get("readyReplicas", 0)
    if ready < pods:
        return []
    return [f"Deployment/{owner.name}"] if kube.delete("apps/v1", "Deployment", owner.namespace, owner.name) else []


def reconcile(
    kube: Kube,
    body: dict[str, Any],
    emit: Emit,
    *,
    now: Callable[[], str] = now_rfc3339,
    clock: Callable[[], float] = time.time,
    fetch_ring: RingFetch = fetch_ring_http,
    images: ImageDefaults | None = None,
) -> Outcome:
    """One full pass for the CacheProxy BODY (as read from the server). Never raises for a bad spec.

    IMAGES: what a spec naming no image gets (default: the chart's, from the operator's environment).
    """
    owner = Owner.from_body(body)
    spec = with_defaults(body.get("spec"), images or ImageDefaults.from_env(os.environ))
    previous = body.get("status") or {}
    outcome = Outcome()
    caps = discover(kube)
    spec_errors = semantic_errors(spec)
    pod_list = kube.list("v1", "Pod", owner.namespace, selector_labels(owner))
    decision = None
    stall: str | None = None
    pods = spec["replicas"]
    problems: list[tuple[str, str]] = []
    if not spec_errors:
        try:
            problems = secret_problems(owner, spec, read_secrets(kube, owner, spec))
        except ApiException as exc:  # e.g. 403: the operator may only get the Secrets it names
            problems = [("SecretUnreadable", f"the Secrets the pods mount cannot be read: {_describe(exc)}")]
        state = state_from_status(previous.get("ring"))
        observed = observe(owner, state, pod_list, spec["proxy"]["ports"]["metrics"], fetch_ring)
        timing = Timing(spec["ring"]["warmupSeconds"], spec["ring"]["progressDeadlineSeconds"])
        decision = advance(state, spec["replicas"], observed, clock(), timing)
        stall = ring_stall(owner, decision, timing.deadline_seconds, pod_list)
        pods = decision.state.pods
        plan = build(owner, spec, caps, decision.state.view, pods)
        try:
            for manifest in plan.desired:
                result = ensure(kube, manifest, owner)
                ref = f"{manifest['kind']}/{manifest['metadata']['name']}"
                if result != "unchanged":
                    getattr(outcome, result).append(ref)
                    time.sleep(float(os.environ.get(STEP_DELAY_ENV, "0")))
            for api_version, kind in plan.absent:
                outcome.deleted += prune(kube, api_version, kind, owner)
        except (ApiException, ChildConflict) as exc:
            outcome.error = _describe(exc)
            log.warning("reconcile of %s/%s failed: %s", owner.namespace, owner.name, outcome.error)
    statefulset = kube.get("apps/v1", "StatefulSet", owner.namespace, owner.name)
    if decision is not None and outcome.error is None:
        try:
            outcome.deleted += migrate_deployment(kube, owner, statefulset, pods)
        except ApiException as exc:
            outcome.error = _describe(exc)
    observation = Observation(
        generation=body["metadata"].get("generation", 0),
        spec=spec,
        workload=statefulset,
        pods=pod_list,
        desired_pods=pods,
        selector=",".join(f"{k}={v}" for k, v in selector_labels(owner).items()),
        # a ring step counts only once its config is written: on a failed apply the old one stands
        ring=(
            ring_status(owner, decision.state, decision.waiting_for)
            if decision is not None and outcome.error is None
            else previous.get("ring")
        ),
        spec_errors=spec_errors,
        reconcile_error=outcome.error,
        monitoring=monitoring_state(spec, caps),
        tls=tls_state(owner, spec, caps),
        secret_problems=problems,
        ring_stall=stall if outcome.error is None else None,
        config_hash="" if spec_errors else config_hash(spec),
    )
    outcome.status = compute_status(observation, previous, now())
    if previous and outcome.created:
        emit("Warning", "ChildrenRestored", "recreated " + ", ".join(outcome.created))
    elif outcome.created:
        emit("Normal", "Created", "created " + ", ".join(outcome.created))
    if outcome.updated:
        emit("Normal", "Updated", "updated " + ", ".join(outcome.updated))
    if outcome.deleted:
        emit("Normal", "Deleted", "deleted " + ", ".join(outcome.deleted))
    if decision is not None and outcome.error is None:
        for event in decision.events:
            emit(*event)
    for event in transitions(previous, outcome.status):
        emit(*event)
    if outcome.status != previous:
        try:
            kube.merge_patch(
                object_path(CR_API, KIND, owner.namespace, owner.name) + "/status",
                {"status": merge_patch(previous, outcome.status)},
            )
        except ApiException as exc:
            if exc.status != 404:  # deleted meanwhile: nothing left to report on
                raise
    return outcome
