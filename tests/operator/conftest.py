"""Fixtures for the operator tests: a real kube-apiserver (+ etcd + kube-controller-manager), with
no kubelet: the tests drive pod readiness themselves by patching pod status, which a kubelet would
overwrite. (The chart and the tier in running pods are tested on the node, tests/chart and tests/e2e.)

With KUBECONFIG set, that cluster is used as it is. Otherwise the project's own control plane is
started on loopback by scripts/k8s/start-cluster.sh (free ports, a temp state dir), from the same
Kubernetes build the node runs (scripts/k8s/build.sh, ~/.cache/k8s/kubernetes-<version>), and stopped
by PID with scripts/k8s/stop-cluster.sh. It shares no port, directory or lock with the node, so both
run in one test session. Missing binaries FAIL the tests: CI builds them first (`scripts/setup.sh
--test`), and a skipped cluster test must never count as a pass.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.support.procs import free_port

# The resync timer is read when the handlers are imported: keep it short so tests converge quickly.
os.environ.setdefault("CACHEPROXY_RESYNC_SECONDS", "2")

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "scripts/k8s"
CRD_FILE = ROOT / "operator/cacheproxy_operator/crd/cacheproxies.yaml"
KVER = os.environ.get("KVER", "v1.37.2")  # as scripts/k8s/build.sh
BIN = Path(os.environ.get("BIN", Path.home() / ".cache/k8s" / f"kubernetes-{KVER}"))
START_ATTEMPTS = 3
T = TypeVar("T")


def kubectl(*args: str, check: bool = True, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["kubectl", *args], input=stdin, capture_output=True, text=True, check=check, timeout=60)


def start_control_plane(state: str) -> None:
    """start-cluster.sh with its state in STATE, on free ports. The ports are free when chosen, but
    another process (the node's components open many connections) may take one before the control plane
    binds it: on "address already in use" it starts again on new ports, at most START_ATTEMPTS times."""
    for attempt in range(1, START_ATTEMPTS + 1):
        ports = dict(
            zip(
                ["KAS_PORT", "ETCD_PORT", "ETCD_PEER_PORT", "KCM_PORT"],
                (str(free_port()) for _ in range(4)),
                strict=True,
            )
        )
        env = {**os.environ, **ports, "D": state, "BIN": str(BIN)}
        started = subprocess.run(
            ["bash", str(SCRIPTS / "start-cluster.sh")], env=env, capture_output=True, text=True, timeout=180
        )
        if started.returncode == 0:
            return
        subprocess.run(["bash", str(SCRIPTS / "stop-cluster.sh")], env=env, capture_output=True, timeout=60)
        output = f"{started.stdout}\n{started.stderr}"
        if "address already in use" not in output or attempt == START_ATTEMPTS:
            pytest.fail(f"start-cluster.sh failed (attempt {attempt}):\n{output}", pytrace=False)


@pytest.fixture(scope="session")
def cluster() -> Iterator[str]:
    """Path of a kubeconfig for a cluster with the CacheProxy CRD installed."""
    if os.environ.get("KUBECONFIG"):
        kubeconfig = os.environ["KUBECONFIG"]
        state = None
    else:
        missing = [b for b in ("kube-apiserver", "kube-controller-manager") if not (BIN / b).exists()]
        if missing:
            pytest.fail(
                f"control-plane binaries missing in {BIN} ({', '.join(missing)}): run "
                "`bash scripts/k8s/build.sh` first (or set KUBECONFIG)",
                pytrace=False,
            )
        state = tempfile.mkdtemp(prefix="cacheproxy-kas-")
        start_control_plane(state)
        kubeconfig = f"{state}/kubeconfig"
        os.environ["KUBECONFIG"] = kubeconfig
        # kopf logs in with load_kube_config(), whose default path was read from the env at import time
        import kubernetes.config.kube_config

        kubernetes.config.kube_config.KUBE_CONFIG_DEFAULT_LOCATION = kubeconfig
    try:
        kubectl("apply", "-f", str(CRD_FILE))
        kubectl("wait", "--for=condition=Established", "--timeout=30s", "crd/cacheproxies.cacheproxy.io")
        yield kubeconfig
    finally:
        if state is not None:
            subprocess.run(["bash", str(SCRIPTS / "stop-cluster.sh")], env={**os.environ, "D": state}, timeout=120)
            shutil.rmtree(state, ignore_errors=True)
            os.environ.pop("KUBECONFIG", None)


@pytest.fixture(scope="session")
def kube(cluster: str):
    from cacheproxy_operator.kube import Kube, new_api_client

    return Kube(new_api_client())


def new_namespace(prefix: str) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", name)
    return name


@pytest.fixture(scope="module")
def namespace(cluster: str) -> Iterator[str]:
    name = new_namespace("cproxy-test")
    yield name
    kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture(scope="module")
def operator(cluster: str, namespace: str) -> Iterator[Any]:
    """The operator running in this process under kopf's KopfRunner, watching NAMESPACE."""
    import cacheproxy_operator.handlers  # noqa: F401  (registers the handlers)
    import kopf.testing

    runner = kopf.testing.KopfRunner(["run", "--standalone", "--namespace", namespace], timeout=60)
    with runner:
        yield runner
    assert runner.exit_code == 0, runner.output
    assert runner.exception is None
    assert "Traceback" not in runner.output, runner.output

