"""`helm install` into a real kube-apiserver: the objects exist, the ServiceAccount can do exactly what the
operator needs (asked of the apiserver's own RBAC authorizer), upgrades work and the CRD survives
uninstall. Then the operator, run with nothing but that ServiceAccount's token, reconciles a CacheProxy.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.chart.cluster import Cluster, kube_test_cluster
from tests.chart.helm import CHART, REPO
from tests.chart.test_rbac import operator_triples
from tests.support.procs import free_port

pytestmark = pytest.mark.cluster

RELEASE_NS = "cache-system"
WATCHED_NS = "caches"
CRD = "cacheproxies.cacheproxy.io"

# Requests the operator never makes: each must be denied (Secrets: it gets the ones a spec names, only).
FORBIDDEN = [("watch", "secrets", ""), ("list", "secrets", ""), ("delete", "cacheproxies.cacheproxy.io", ""),
             ("create", "cacheproxies.cacheproxy.io", ""), ("create", "pods", ""), ("delete", "pods", ""),
             ("create", "clusterroles.rbac.authorization.k8s.io", ""), ("update", "namespaces", ""),
             ("create", "customresourcedefinitions.apiextensions.k8s.io", ""), ("create", "pods/exec", "")]


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with kube_test_cluster() as running:
        # The Prometheus Operator's ServiceMonitor CRD and cert-manager's Certificate CRD, as on a
        # cluster with monitoring and cert-manager (the operator manages both kinds; RBAC questions
        # about them need the resources to exist).
        crds = [str(REPO / "scripts" / "k8s" / "servicemonitor-crd.yaml"),
                str(REPO / "tests" / "operator" / "certificate-crd-minimal.yaml")]
        for crd in crds:
            running.kubectl("apply", "-f", crd)
        running.kubectl("create", "namespace", WATCHED_NS, check=False)
        try:
            yield running
        finally:
            # The cluster is shared with the session's other tests: leave it without those APIs.
            for crd in crds:
                running.kubectl("delete", "-f", crd, "--wait=true", check=False)


def can_i(cluster: Cluster, account: str, verb: str, resource: str, namespace: str | None) -> bool:
    args = ["auth", "can-i", verb, resource, f"--as=system:serviceaccount:{RELEASE_NS}:{account}"]
    if "/" in resource:
        base, sub = resource.split("/", 1)
        group_sep = base.find(".")
        plural, group = (base, "") if group_sep < 0 else (base[:group_sep], base[group_sep:])
        args[3] = f"{plural}{group}"
        args.append(f"--subresource={sub}")
    args += ["-n", namespace] if namespace else ["--all-namespaces"]
    answer = cluster.kubectl(*args, check=False).stdout.strip()
    assert answer in {"yes", "no"}, answer
    return answer == "yes"


def resource_name(group: str, resource: str) -> str:
    plural, _, sub = resource.partition("/")
    qualified = f"{plural}.{group}" if group else plural
    return f"{qualified}/{sub}" if sub else qualified


def test_install_upgrade_and_uninstall_keep_rbac_exact_and_the_crd(cluster: Cluster) -> None:
    release = "cp-wide"
    cluster.helm("install", release, str(CHART), "-n", RELEASE_NS, "--create-namespace")
    try:
        cluster.wait_for("crd", CRD)
        deployment = json.loads(cluster.wait_for("deployment", release + "-cacheproxy", "-n", RELEASE_NS,
                                                 "-o", "json"))
        assert deployment["spec"]["strategy"]["type"] == "Recreate"
        assert cluster.wait_for("configmap", f"{release}-cacheproxy-dashboard", "-n", RELEASE_NS,
                                "-o", "jsonpath={.metadata.labels.grafana_dashboard}") == "1"
        account = f"{release}-cacheproxy"
        for group, resource, verb in sorted(operator_triples()):
            assert can_i(cluster, account, verb, resource_name(group, resource), WATCHED_NS), \
                (verb, group, resource)
        for verb, resource, _ in FORBIDDEN:
            assert not can_i(cluster, account, verb, resource, WATCHED_NS), (verb, resource)

        # Single-namespace mode by upgrade: writes allowed in the watched namespace only.
        cluster.helm("upgrade", release, str(CHART), "-n", RELEASE_NS,
                     "--set", f"operator.watchNamespace={WATCHED_NS}")
        assert can_i(cluster, account, "create", "statefulsets.apps", WATCHED_NS)
        assert not can_i(cluster, account, "create", "statefulsets.apps", "default")
        assert not can_i(cluster, account, "list", "cacheproxies.cacheproxy.io", "default")
        assert can_i(cluster, account, "list", "customresourcedefinitions.apiextensions.k8s.io", None)
        args = json.loads(cluster.kubectl("get", "deployment", account, "-n", RELEASE_NS, "-o",
                                          "jsonpath={.spec.template.spec.containers[0].args}").stdout)
        assert args[-2:] == ["--namespace", WATCHED_NS]
    finally:
        cluster.helm("uninstall", release, "-n", RELEASE_NS, check=False)
    assert cluster.kubectl("get", "deployment", f"{release}-cacheproxy", "-n", RELEASE_NS,
                           check=False).returncode != 0
    # Helm never deletes crds/: the CacheProxy CRD (and with it every CacheProxy) survives uninstall.
    cluster.kubectl("get", "crd", CRD)


def service_account_kubeconfig(cluster: Cluster, account: str, path: Path) -> None:
    """A kubeconfig that authenticates as the chart's ServiceAccount (a TokenRequest token, as pods get)."""
    token = cluster.kubectl("create", "token", account, "-n", RELEASE_NS, "--duration=1h").stdout.strip()
    admin = yaml.safe_load(Path(cluster.kubeconfig).read_text())
    admin["users"] = [{"name": account, "user": {"token": token}}]
    admin["contexts"] = [{"name": "sa", "context": {"cluster": admin["clusters"][0]["name"], "user": account,
                                                   "namespace": WATCHED_NS}}]
    admin["current-context"] = "sa"
    path.write_text(yaml.safe_dump(admin))


def example_cacheproxy() -> dict:
    for path in sorted((REPO / "examples").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == "CacheProxy":
                return doc
    raise AssertionError("no CacheProxy manifest in examples/")


def test_operator_with_only_the_chart_rbac_reconciles_the_example(cluster: Cluster) -> None:
    release = "cp-ns"
    cluster.helm("install", release, str(CHART), "-n", RELEASE_NS, "--create-namespace",
                 "--set", f"operator.watchNamespace={WATCHED_NS}")
    workdir = Path(tempfile.mkdtemp(prefix="cacheproxy-chart-operator-"))
    operator = None
    example = example_cacheproxy()
    name = example["metadata"]["name"]
    try:
        kubeconfig = workdir / "kubeconfig"
        service_account_kubeconfig(cluster, f"{release}-cacheproxy", kubeconfig)
        # The same command line the chart's Deployment runs, as a local process with the SA's token.
        with open(workdir / "operator.log", "wb") as log:  # the child keeps its own copy of the fd
            operator = subprocess.Popen(
                [sys.executable, "-c", "import sys; from cacheproxy_operator.cli import main; sys.exit(main())",
                 "--liveness", f"http://127.0.0.1:{free_port()}/healthz", "--namespace", WATCHED_NS],
                stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "KUBECONFIG": str(kubeconfig)},
            )
        example["metadata"]["namespace"] = WATCHED_NS
        cluster.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(example))
        deadline = time.monotonic() + 90
        while cluster.kubectl("get", "statefulset", "-n", WATCHED_NS, "-l",
                              f"app.kubernetes.io/instance={name}", "-o", "name", check=False).stdout == "":
            assert operator.poll() is None, (workdir / "operator.log").read_text()
            assert time.monotonic() < deadline, (workdir / "operator.log").read_text()
            time.sleep(0.5)
        logs = (workdir / "operator.log").read_text()
        assert "Forbidden" not in logs and " 403" not in logs, logs
    finally:
        if operator is not None:
            operator.terminate()
            try:
                operator.wait(timeout=20)
            except subprocess.TimeoutExpired:
                operator.kill()
                operator.wait()
        cluster.kubectl("delete", "cacheproxy", name, "-n", WATCHED_NS, "--wait=false", check=False)
        cluster.helm("uninstall", release, "-n", RELEASE_NS, check=False)
