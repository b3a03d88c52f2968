"""The PodDisruptionBudget (policy/v1): at most maxUnavailable of the tier's pods evicted at once."""

from __future__ import annotations

from typing import Any

from cacheproxy_operator.manifests.common import Owner, metadata, selector_labels


def pod_disruption_budget(owner: Owner, spec: dict[str, Any]) -> dict[str, Any]:
    pdb = spec["podDisruptionBudget"]
    budget: dict[str, Any] = {"selector": {"matchLabels": selector_labels(owner)}}
    if "minAvailable" in pdb:
        budget["minAvailable"] = pdb["minAvailable"]
    else:
        budget["maxUnavailable"] = pdb.get("maxUnavailable", 1)
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": metadata(owner, spec, owner.name),
        "spec": budget,
    }
