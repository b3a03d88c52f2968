"""A real test kube-apiserver for the chart's install test, and kubectl/helm bound to it.

Uses $CACHEPROXY_TEST_KUBECONFIG when it points at a reachable test cluster (never plain $KUBECONFIG:
the test installs and deletes things); otherwise starts one with the project's
scripts/k8s/start-cluster.sh (etcd + kube-apiserver + kube-controller-manager on loopback, free ports,
its own state dir) and stops it by PID with scripts/k8s/stop-cluster.sh.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.chart.helm import REPO, helm_binary
from tests.support.procs import free_port

SCRIPTS = REPO / "scripts" / "k8s"


@dataclass(frozen=True)
class Cluster:
    kubeconfig: str

    def kubectl(self, *args: str, check: bool = True, timeout: float = 60,
                stdin: str | None = None) -> subprocess.CompletedProcess:
        result = subprocess.run(["kubectl", "--kubeconfig", self.kubeconfig, *args], capture_output=True,
                                text=True, timeout=timeout, input=stdin)
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)}: {result.stderr}")
        return result

    def helm(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        result = subprocess.run([helm_binary(), "--kubeconfig", self.kubeconfig, *args], capture_output=True,
                                text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)}: {result.stdout}{result.stderr}")
        return result

    def wait_for(self, *get_args: str, timeout: float = 30) -> str:
        """Poll `kubectl get ...` until it succeeds; returns its output."""
        deadline = time.monotonic() + timeout
        while True:
            result = self.kubectl("get", *get_args, check=False)
            if result.returncode == 0 and result.stdout.strip():
                return result.stdout
            if time.monotonic() > deadline:
                raise AssertionError(f"kubectl get {' '.join(get_args)} never succeeded: {result.stderr}")
            time.sleep(0.2)


def port_available(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def control_plane_ports() -> dict[str, str]:
    """Distinct free ports; etcd also uses ETCD_PORT + 1 (peer), so that one must be free too."""
    while True:
        etcd = free_port()
        if etcd < 65535 and port_available(etcd + 1):
            break
    taken = {etcd, etcd + 1}
    others = []
    while len(others) < 2:
        port = free_port()
        if port not in taken:
            taken.add(port)
            others.append(port)
    return {"ETCD_PORT": str(etcd), "KAS_PORT": str(others[0]), "KCM_PORT": str(others[1])}


def reachable(kubeconfig: str) -> bool:
    result = subprocess.run(["kubectl", "--kubeconfig", kubeconfig, "get", "--raw", "/readyz"],
                            capture_output=True, text=True, timeout=20)
    return result.returncode == 0


@contextmanager
def kube_test_cluster() -> Iterator[Cluster]:
    existing = os.environ.get("CACHEPROXY_TEST_KUBECONFIG")
    if existing and Path(existing).exists() and reachable(existing):
        yield Cluster(existing)
        return
    state = tempfile.mkdtemp(prefix="cacheproxy-chart-kas-")
    env = {**os.environ, "D": state, **control_plane_ports()}
    started = subprocess.run(["bash", str(SCRIPTS / "start-cluster.sh")], env=env, capture_output=True,
                             text=True, timeout=180)
    try:
        if started.returncode != 0:
            raise AssertionError(f"start-cluster.sh failed: {started.stdout}{started.stderr}")
        yield Cluster(f"{state}/kubeconfig")
    finally:
        subprocess.run(["bash", str(SCRIPTS / "stop-cluster.sh")], env=env, capture_output=True, timeout=120)
        shutil.rmtree(state, ignore_errors=True)
