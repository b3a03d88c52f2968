"""Run the real `helm` binary against the chart and parse what it renders.

helm comes from PATH or from ~/.cache/k8s/helm (scripts/k8s/get-helm.sh puts it there). A missing
helm is a failure, not a skip: the chart's proofs must run in CI.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "cacheproxy"
VALUES_MAX = Path(__file__).resolve().parent / "values-max.yaml"
CACHED_HELM = Path.home() / ".cache" / "k8s" / "helm"
KUBERNETES_VERSION = "1.33.0"


def helm_binary() -> str:
    found = shutil.which("helm") or (str(CACHED_HELM) if CACHED_HELM.exists() else None)
    if found is None:
        raise AssertionError(f"helm not found on PATH or at {CACHED_HELM}: run scripts/k8s/get-helm.sh")
    return found


def helm(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([helm_binary(), *args], capture_output=True, text=True, timeout=timeout)


def render(*, values: Sequence[Path] = (), sets: Sequence[str] = (), api_versions: Sequence[str] = (),
           release: str = "rel", namespace: str = "cache-system") -> str:
    """`helm template` output; raises with helm's stderr when rendering fails."""
    args = ["template", release, str(CHART), "--namespace", namespace]
    for path in values:
        args += ["-f", str(path)]
    for assignment in sets:
        args += ["--set", assignment]
    for api in api_versions:
        args += ["--api-versions", api]
    result = helm(*args)
    if result.returncode != 0:
        raise AssertionError(f"helm template failed: {result.stderr}")
    return result.stdout


def documents(rendered: str) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(rendered) if doc]


def by_kind(docs: list[dict], kind: str) -> list[dict]:
    return [doc for doc in docs if doc["kind"] == kind]


def one(docs: list[dict], kind: str) -> dict:
    found = by_kind(docs, kind)
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]
