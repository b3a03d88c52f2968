"""The test session's one Kubernetes cluster: a real single node, and kubectl/helm bound to it.

`session_cluster()` returns the same running cluster to every caller in the process (the chart and e2e
tests share it; the operator tests run on their own kubelet-less control plane, see
tests/operator/conftest.py). It uses $CACHEPROXY_TEST_KUBECONFIG when that points at a reachable test
cluster (never plain $KUBECONFIG: the tests install and delete things; a node started by hand with
start-node.sh is $D/kubeconfig, and its $D/env lets the e2e tests load images into it); otherwise it starts the
project's own node once with scripts/k8s/start-node.sh (Kubernetes built by scripts/k8s/build.sh:
control plane, kubelet, kube-proxy, containerd, CoreDNS) and stops it by PID with
scripts/k8s/stop-node.sh when the process exits. A node binds fixed host resources (a lo address, a
bridge, iptables chains), so one test session at a time holds it: another waits on a lock file.
Missing binaries fail the tests (the build is part of `scripts/setup.sh --test`), never skip them.
"""

from __future__ import annotations

import atexit
import fcntl
import os
import shlex
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.chart.helm import REPO, helm_binary

SCRIPTS = REPO / "scripts" / "k8s"
STATE = Path(os.environ.get("CACHEPROXY_K8S_STATE", "/tmp/cacheproxy-k8s"))
LOCK = Path("/run/lock/cacheproxy-k8s-node.lock")
LOCK_WAIT_SECONDS = 1200
START_TIMEOUT_SECONDS = 300


@dataclass(frozen=True)
class Cluster:
    kubeconfig: str
    node_env: dict[str, str] = field(default_factory=dict)

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

    @property
    def has_node(self) -> bool:
        """True for the project's own node (images can be imported into its containerd)."""
        return "CTR" in self.node_env

    def ctr(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        """`ctr` on the node's containerd, in the CRI's k8s.io namespace."""
        result = subprocess.run([*shlex.split(self.node_env["CTR"]), *args], capture_output=True, text=True,
                                timeout=timeout)
        if result.returncode != 0:
            raise AssertionError(f"ctr {' '.join(args)}: {result.stderr}")
        return result


def reachable(kubeconfig: str) -> bool:
    result = subprocess.run(["kubectl", "--kubeconfig", kubeconfig, "get", "--raw", "/readyz"],
                            capture_output=True, text=True, timeout=20)
    return result.returncode == 0


def read_node_env(path: Path) -> dict[str, str]:
    """start-node.sh's $D/env: one line of shell assignments."""
    env: dict[str, str] = {}
    for word in shlex.split(path.read_text()):
        key, _, value = word.partition("=")
        env[key] = value
    return env


_running: Cluster | None = None


def _hold_node_lock() -> None:
    """Take the machine-wide node lock for the rest of this process (waits for another session's node)."""
    LOCK.parent.mkdir(parents=True, exist_ok=True)
    handle = open(LOCK, "w")  # kept open (and locked) until the process exits
    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise AssertionError(f"another test session holds {LOCK} (its node) for over "
                                     f"{LOCK_WAIT_SECONDS}s") from None
            time.sleep(1)
    atexit.register(handle.close)


def _stop_node(env: dict[str, str]) -> None:
    subprocess.run(["bash", str(SCRIPTS / "stop-node.sh")], env=env, capture_output=True, timeout=300)


def session_cluster() -> Cluster:
    """The process's cluster, started on first use and stopped when the process exits."""
    global _running
    if _running is not None:
        return _running
    existing = os.environ.get("CACHEPROXY_TEST_KUBECONFIG")
    if existing and Path(existing).exists() and reachable(existing):
        node_env = Path(existing).parent / "env"  # a node started by hand with start-node.sh
        _running = Cluster(existing, read_node_env(node_env) if node_env.exists() else {})
        return _running
    _hold_node_lock()
    env = {**os.environ, "D": str(STATE)}
    _stop_node(env)  # leftovers of a session that was killed before it could stop its node
    started = subprocess.run(["bash", str(SCRIPTS / "start-node.sh")], env=env, capture_output=True, text=True,
                             timeout=START_TIMEOUT_SECONDS)
    if started.returncode != 0:
        _stop_node(env)
        raise AssertionError(f"start-node.sh failed:\n{started.stdout}\n{started.stderr}")
    atexit.register(_stop_node, env)
    _running = Cluster(str(STATE / "kubeconfig"), read_node_env(STATE / "env"))
    return _running


@contextmanager
def kube_test_cluster() -> Iterator[Cluster]:
    """The session's cluster as a context manager (it outlives the block: stopped at process exit)."""
    yield session_cluster()
