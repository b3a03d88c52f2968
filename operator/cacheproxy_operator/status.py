"""Pure status computation: conditions, phase and endpoints from what the server reports.

Conditions keep their lastTransitionTime while their status stays the same, so a reconcile that
finds nothing new produces an identical status and writes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

READY, PROGRESSING, DEGRADED, MONITORING, TLS = "Ready", "Progressing", "Degraded", "Monitoring", "TLS"
# A container's waiting reason (kubelet) -> the Degraded reason that names the cause.
WAITING_REASONS = {
    "ErrImagePull": "ImagePullFailing",
    "ImagePullBackOff": "ImagePullFailing",
    "InvalidImageName": "ImagePullFailing",
    "ErrImageNeverPull": "ImagePullFailing",
    "CrashLoopBackOff": "CrashLooping",
    "CreateContainerConfigError": "ContainerConfigError",
    "CreateContainerError": "ContainerConfigError",
    "RunContainerError": "ContainerConfigError",
}
SHOWN_PROBLEMS = 3


@dataclass(frozen=True)
class Observation:
    """Everything a status is computed from."""

    generation: int
    spec: dict[str, Any]
    workload: dict[str, Any] | None  # the StatefulSet
    pods: list[dict[str, Any]]
    desired_pods: int | None = None  # StatefulSet replicas; spec.replicas when not given
    selector: str = ""
    ring: dict[str, Any] | None = None
    spec_errors: list[str] = field(default_factory=list)
    reconcile_error: str | None = None
    monitoring: tuple[str, str, str] = ("False", "Disabled", "")  # status, reason, message
    tls: tuple[str, str, str] = ("False", "Disabled", "")  # status, reason, message
    # (reason, message) for each Secret the pods mount that is missing or lacks a key
    secret_problems: list[tuple[str, str]] = field(default_factory=list)
    config_hash: str = ""
    ring_stall: str | None = None  # a ring change held past its deadline: the pods it waits on


def _condition(type_: str, status: str, reason: str, message: str, generation: int) -> dict[str, Any]:
    return {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "observedGeneration": generation,
    }


def _pod_ready(pod: dict[str, Any]) -> bool:
    if pod.get("metadata", {}).get("deletionTimestamp"):
        return False
    conditions = pod.get("status", {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def endpoints(pods: list[dict[str, Any]], port: int) -> list[str]:
    """IP:port of every ready pod, sorted, for clients that hash keys over pods themselves."""
    found = set()
    for pod in pods:
        ip = pod.get("status", {}).get("podIP")
        if ip and _pod_ready(pod):
            found.add(f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}")
    return sorted(found)


def pod_problems(pods: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(reason, message) for every pod that cannot run: unschedulable, or a container (init and
    sidecar containers included) waiting on an image pull, a crash loop or a bad container config."""
    problems = []
    for pod in sorted(pods, key=lambda p: p.get("metadata", {}).get("name", "")):
        if pod.get("metadata", {}).get("deletionTimestamp"):
            continue
        name = pod.get("metadata", {}).get("name", "?")
        status = pod.get("status") or {}
        for cond in status.get("conditions") or []:
            if (cond.get("type"), cond.get("status"), cond.get("reason")) == ("PodScheduled", "False", "Unschedulable"):
                problems.append(("Unschedulable", f"pod {name} unschedulable: {cond.get('message', '')}".strip()))
        for container in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or []):
            waiting = (container.get("state") or {}).get("waiting") or {}
            reason = WAITING_REASONS.get(waiting.get("reason", ""))
            if reason:
                detail = f": {waiting['message']}" if waiting.get("message") else ""
                problems.append((reason, f"pod {name} container {container.get('name')}: {waiting['reason']}{detail}"))
    return problems


def _rollout(workload: dict[str, Any] | None, desired: int) -> tuple[int, bool, str | None]:
    """(ready replicas, rollout finished, failure message) for the StatefulSet."""
    if workload is None:
        return 0, False, None
    status = workload.get("status", {})
    ready = status.get("readyReplicas", 0)
    current = status.get("observedGeneration", 0) >= workload["metadata"].get("generation", 0)
    finished = current and status.get("updatedReplicas", 0) == desired and status.get("replicas", 0) == desired
    failure = None
    for cond in status.get("conditions") or []:
        if cond.get("type") == "ReplicaFailure" and cond.get("status") == "True":
            failure = cond.get("message") or cond.get("reason", "ReplicaFailure")
        if cond.get("type") == "Progressing" and cond.get("reason") == "ProgressDeadlineExceeded":
            failure = cond.get("message") or "progress deadline exceeded"
    return ready, finished, failure


def conditions_for(obs: Observation) -> list[dict[str, Any]]:
    gen = obs.generation
    if obs.spec_errors:
        message = "; ".join(obs.spec_errors)
        return [
            _condition(READY, "False", "InvalidSpec", message, gen),
            _condition(PROGRESSING, "False", "InvalidSpec", "fix the spec to continue", gen),
            _condition(DEGRADED, "True", "InvalidSpec", message, gen),
            _condition(MONITORING, *obs.monitoring, gen),
            _condition(TLS, *obs.tls, gen),
        ]
    desired = obs.spec["replicas"] if obs.desired_pods is None else obs.desired_pods
    ready, finished, failure = _rollout(obs.workload, desired)
    all_ready = finished and ready >= desired
    counts = f"{ready}/{desired} replicas ready"
    conds = [
        _condition(
            READY,
            "True" if all_ready else "False",
            "AllReplicasReady" if all_ready else "ReplicasNotReady",
            counts,
            gen,
        ),
        _condition(
            PROGRESSING,
            "False" if all_ready else "True",
            "RolloutComplete" if all_ready else "RollingOut",
            counts,
            gen,
        ),
    ]
    if obs.reconcile_error:
        conds.append(_condition(DEGRADED, "True", "ReconcileFailed", obs.reconcile_error, gen))
    elif obs.secret_problems:  # the pods cannot mount them: no container starts, nothing else to see
        message = "; ".join(message for _, message in obs.secret_problems)
        conds.append(_condition(DEGRADED, "True", obs.secret_problems[0][0], message, gen))
    elif failure:
        conds.append(_condition(DEGRADED, "True", "WorkloadFailing", failure, gen))
    elif obs.ring_stall:  # names the pods and, when the kubelet says why, their own problem
        conds.append(_condition(DEGRADED, "True", "RingStalled", obs.ring_stall, gen))
    elif problems := pod_problems(obs.pods):
        shown = "; ".join(message for _, message in problems[:SHOWN_PROBLEMS])
        more = len(problems) - SHOWN_PROBLEMS
        message = f"{shown} (and {more} more)" if more > 0 else shown
        conds.append(_condition(DEGRADED, "True", problems[0][0], message, gen))
    else:
        conds.append(_condition(DEGRADED, "False", "AsExpected", "all children reconciled", gen))
    conds.append(_condition(MONITORING, *obs.monitoring, gen))
    conds.append(_condition(TLS, *obs.tls, gen))
    return conds


def _phase(conds: list[dict[str, Any]], spec_errors: list[str]) -> str:
    by_type = {c["type"]: c for c in conds}
    if spec_errors:
        return "Invalid"
    if by_type[DEGRADED]["status"] == "True":
        return "Degraded"
    if by_type[READY]["status"] == "True":
        return "Ready"
    return "Progressing"


def with_transition_times(new: list[dict[str, Any]], old: list[dict[str, Any]], now: str) -> list[dict[str, Any]]:
    previous = {c.get("type"): c for c in old or []}
    out = []
    for cond in new:
        before = previous.get(cond["type"])
        keep = before is not None and before.get("status") == cond["status"] and before.get("lastTransitionTime")
        out.append({**cond, "lastTransitionTime": before["lastTransitionTime"] if keep else now})
    return out


def compute_status(obs: Observation, previous: dict[str, Any], now: str) -> dict[str, Any]:
    conds = conditions_for(obs)
    workload_status = (obs.workload or {}).get("status", {})
    status = {
        "observedGeneration": obs.generation,
        "phase": _phase(conds, obs.spec_errors),
        "replicas": workload_status.get("replicas", 0),
        "readyReplicas": workload_status.get("readyReplicas", 0),
        "selector": obs.selector,
        "endpoints": endpoints(obs.pods, obs.spec["proxy"]["ports"]["client"]),
        "conditions": with_transition_times(conds, previous.get("conditions", []), now),
    }
    if obs.ring:
        status["ring"] = obs.ring
    if obs.config_hash:
        status["configHash"] = obs.config_hash
    elif previous.get("configHash"):
        status["configHash"] = previous["configHash"]
    return status


def transitions(previous: dict[str, Any], current: dict[str, Any]) -> list[tuple[str, str, str]]:
    """Events worth posting: (type, reason, message) for conditions that changed status or reason."""
    before = {c.get("type"): c for c in previous.get("conditions", [])}
    events = []
    for cond in current["conditions"]:
        old = before.get(cond["type"])
        changed = old is None or old.get("status") != cond["status"] or old.get("reason") != cond["reason"]
        if cond["type"] == DEGRADED and cond["status"] == "True" and (changed or old.get("message") != cond["message"]):
            events.append(("Warning", cond["reason"], cond["message"]))
        elif cond["type"] == READY and changed and (old is not None or cond["status"] == "True"):
            kind = "Normal" if cond["status"] == "True" else "Warning"
            events.append((kind, "Ready" if cond["status"] == "True" else "NotReady", cond["message"]))
        elif cond["type"] == MONITORING and changed and cond["reason"] == "APINotServed":
            events.append(("Warning", "NoServiceMonitorAPI", cond["message"]))
        elif cond["type"] == TLS and changed and cond["reason"] == "APINotServed":
            events.append(("Warning", "NoCertManagerAPI", cond["message"]))
    return events
