"""The proxies watch their ConfigMap through the API in real pods: with the ServiceAccount, Role and
RoleBinding the operator makes and the token it projects into the proxy container only, a change the
operator writes reaches every pod within about a second (measured from the ConfigMap's change, seen
by polling it, to each pod's counter of watched configs applied); the kubelet's later copy of the
same file changes nothing; the token is refused anything but that ConfigMap."""

from __future__ import annotations

import json
import subprocess
import threading
import time
import urllib.request

import pytest

from tests.e2e.conftest import Tier, get_json
from tests.support.wait import poll

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1500)]
APPLIED = 'cacheproxy_config_updates_total{result="applied",source="watch"}'
UNCHANGED = 'cacheproxy_config_updates_total{result="unchanged",source="file"}'
TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"


def metrics(pod: dict) -> dict[str, float]:
    with urllib.request.urlopen(f"http://{pod['status']['podIP']}:9150/metrics", timeout=5) as answer:
        lines = answer.read().decode().splitlines()
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in lines if line and line[0] != "#"}


def config_text(tier: Tier) -> str:
    return get_json(tier.cluster, "configmap", f"{tier.name}-config", "-n", tier.namespace)["data"]["config.yaml"]


def test_every_proxy_watches_its_configmap_and_applies_a_change_at_once(tier: Tier) -> None:
    pods = tier.wait_ready(2)
    poll(lambda: all(metrics(pod).get("cacheproxy_config_watch_up") == 1 for pod in pods), timeout=60,
         what="every proxy's watch open")
    before = {pod["metadata"]["name"]: metrics(pod).get(APPLIED, 0) for pod in pods}
    old_text = config_text(tier)
    spec = get_json(tier.cluster, "cacheproxy", tier.name, "-n", tier.namespace)["spec"]
    level = "debug" if spec.get("proxy", {}).get("logLevel", "info") != "debug" else "info"
    applied_at: dict[str, float] = {}
    versions: list[tuple[float, str]] = []  # (when, resourceVersion) as a kubectl watch of the ConfigMap sees them
    stop = threading.Event()

    def watch_pods() -> None:
        while not stop.is_set() and len(applied_at) < len(pods):
            for pod in pods:
                name = pod["metadata"]["name"]
                if name not in applied_at and metrics(pod).get(APPLIED, 0) > before[name]:
                    applied_at[name] = time.monotonic()
            time.sleep(0.005)

    kubectl_watch = subprocess.Popen(
        ["kubectl", "--kubeconfig", tier.cluster.kubeconfig, "get", "configmap", f"{tier.name}-config", "-n",
         tier.namespace, "--watch", "-o", "jsonpath={.metadata.resourceVersion}{\"\\n\"}"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)

    def watch_configmap() -> None:
        assert kubectl_watch.stdout is not None
        for line in kubectl_watch.stdout:
            versions.append((time.monotonic(), line.strip()))

    threads = [threading.Thread(target=watch_pods, daemon=True), threading.Thread(target=watch_configmap, daemon=True)]
    for thread in threads:
        thread.start()
    try:
        poll(lambda: versions, timeout=30, interval=0.05, what="kubectl's watch of the ConfigMap")
        patched = time.monotonic()
        tier.cluster.kubectl("patch", "cacheproxy", tier.name, "-n", tier.namespace, "--type=merge",
                             "-p", json.dumps({"spec": {"proxy": {"logLevel": level}}}))
        poll(lambda: config_text(tier) != old_text, timeout=60, interval=0.1, what="the operator writing the ConfigMap")
        poll(lambda: len(versions) > 1, timeout=30, interval=0.02, what="kubectl's watch seeing the change")
        poll(lambda: len(applied_at) == len(pods), timeout=30, interval=0.05, what="every proxy applying it")
    finally:
        stop.set()
        kubectl_watch.terminate()
        kubectl_watch.wait(10)
        for thread in threads:
            thread.join(10)
    changed_at = versions[1][0]
    lags = {name: at - changed_at for name, at in applied_at.items()}
    print(f"\nCacheProxy patched -> ConfigMap changed (kubectl's watch): {changed_at - patched:.3f}s; "
          "-> applied by each proxy (GET /metrics, polled): "
          + ", ".join(f"{name} {lag:+.3f}s" for name, lag in sorted(lags.items())))
    # the proxies' watch and kubectl's are told at the same moment: either may be first
    assert max(lags.values()) < 2.0, lags
    assert "debug" in config_text(tier) or level == "info"
    for pod in pods:  # no rollout: the same pods, not restarted
        assert pod["metadata"]["uid"] in {p["metadata"]["uid"] for p in tier.ready_pods()}
    # the kubelet's copy of the same text, about a minute later, is seen and not applied again
    started = time.monotonic()
    unchanged = {pod["metadata"]["name"]: metrics(pod).get(UNCHANGED, 0) for pod in pods}
    poll(lambda: all(metrics(pod).get(UNCHANGED, 0) > unchanged[pod["metadata"]["name"]] for pod in pods),
         timeout=180, interval=1, what="the kubelet's copy of the file reaching every pod")
    print(f"the kubelet's copy arrived within {time.monotonic() - started:.0f}s more, not applied again")
    assert all(metrics(pod).get(APPLIED, 0) == before[pod["metadata"]["name"]] + 1 for pod in pods)


def test_only_the_proxy_container_holds_a_token_and_it_reads_nothing_else(tier: Tier) -> None:
    pod = tier.wait_ready(2)[0]["metadata"]["name"]
    memcached = tier.cluster.kubectl("exec", "-n", tier.namespace, pod, "-c", "memcached", "--",
                                     "test", "-e", TOKEN, check=False)
    assert memcached.returncode == 1, memcached  # memcached's container has no token
    probe = (
        "import json,ssl,urllib.request,urllib.error,os\n"
        "d='/var/run/secrets/kubernetes.io/serviceaccount'\n"
        "ctx=ssl.create_default_context(cafile=d+'/ca.crt')\n"
        "tok=open(d+'/token').read().strip(); ns=open(d+'/namespace').read().strip()\n"
        "base='https://%s:%s' % (os.environ['KUBERNETES_SERVICE_HOST'], os.environ['KUBERNETES_SERVICE_PORT'])\n"
        "out=[]\n"
        "for p in [f'/api/v1/namespaces/{ns}/configmaps/{os.environ[\"CACHEPROXY_CONFIGMAP\"]}',\n"
        "          f'/api/v1/namespaces/{ns}/configmaps', f'/api/v1/namespaces/{ns}/secrets',\n"
        "          f'/api/v1/namespaces/{ns}/pods', '/api/v1/configmaps']:\n"
        "    r=urllib.request.Request(base+p, headers={'Authorization': 'Bearer '+tok})\n"
        "    try: out.append(urllib.request.urlopen(r, context=ctx, timeout=10).status)\n"
        "    except urllib.error.HTTPError as e: out.append(e.code)\n"
        "print(json.dumps(out))\n"
    )
    answers = json.loads(tier.exec(pod, "cacheproxy", "python3", "-c", probe).strip().splitlines()[-1])
    # its ConfigMap; every ConfigMap of the namespace, Secrets, Pods, ConfigMaps of every namespace
    assert answers == [200, 403, 403, 403, 403], answers
