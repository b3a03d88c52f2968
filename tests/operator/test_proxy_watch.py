"""A real proxy watching its ConfigMap on a real kube-apiserver, as the operator's ServiceAccount,
Role and RoleBinding for a tier let it (built by cacheproxy_operator.manifests.access).

The proxy reaches the API server through a TCP relay the test can cut (TLS passes through it
untouched), with the ServiceAccount's token in a service-account directory of its own. Measured: a
ConfigMap change reaches the proxy's GET /ring within a second; the watch survives cut connections,
a bad token, the API server restarting (and the 410 Gone that follows: the resume point is older
than the new watch cache); an invalid text is refused while the proxy keeps serving; the mounted file
(the kubelet's slower copy) neither re-applies nor undoes what the watch applied. And the token is
refused everything but reading that one ConfigMap."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cacheproxy_operator.manifests.access import access
from cacheproxy_operator.manifests.common import Owner
from cacheproxy_operator.spec import with_defaults

from tests.operator.conftest import kubectl, new_namespace
from tests.support.procs import free_port, recv_until, start_memcached, start_proxy
from tests.support.wait import poll

pytestmark = pytest.mark.cluster
NAME = "cache"
CONFIG_MAP = f"{NAME}-config"
APPLY_WITHIN = 2.0  # seconds from a ConfigMap write to GET /ring showing it
APPLIED_BY_WATCH = 'cacheproxy_config_updates_total{result="applied",source="watch"}'


class Relay:
    """127.0.0.1:PORT -> the API server, byte for byte; cut() drops every connection, refuse() turns
    new ones away until allow()."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.open: set[socket.socket] = set()
        self.lock = threading.Lock()
        self.refusing = False
        self.accepted = 0
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            if self.refusing:
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self.lock:
                self.open |= {client, upstream}
                self.accepted += 1
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self.pipe, args=(a, b), daemon=True).start()

    def pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()
        with self.lock:
            self.open -= {src, dst}

    def cut(self) -> None:
        with self.lock:
            for s in list(self.open):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.server.close()
        self.cut()


def ring_text(generation: int, members: int, peer_port: int, *, extra: str = "") -> str:
    """The ring config as the operator writes it (self comes from --ring-self, which must win over the
    text's own)."""
    config = {
        "log_level": "info",
        "ring": {
            "self": "name-in-the-text",
            "generation": generation,
            "members": [{"name": f"m{i}", "peer": f"127.0.0.1:{peer_port + i}"} for i in range(members)],
            "peer_listen": f"127.0.0.1:{peer_port}",
        },
    }
    return yaml.safe_dump(config) + extra


def get_json(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=5) as answer:
        return json.loads(answer.read())


def metrics(admin: str) -> dict[str, float]:
    with urllib.request.urlopen(f"http://{admin}/metrics", timeout=5) as answer:
        lines = answer.read().decode().splitlines()
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in lines if line and line[0] != "#"}


@pytest.fixture(scope="module")
def tier(cluster: str, kube: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A namespace with the tier's ConfigMap and the operator's ServiceAccount, Role and RoleBinding
    for it; a service-account directory holding a token of that ServiceAccount."""
    namespace = new_namespace("cproxy-watch")
    owner = Owner(name=NAME, namespace=namespace, uid="00000000-0000-4000-8000-000000000000")
    peer_port = free_port()
    objects = access(owner, with_defaults({}))
    for obj in objects:  # no owner: the garbage collector would remove objects of an absent owner
        obj["metadata"].pop("ownerReferences")
    objects.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": CONFIG_MAP, "namespace": namespace},
                    "data": {"config.yaml": ring_text(1, 1, peer_port)}})
    # a neighbour the token must not read
    objects.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "other", "namespace": namespace},
                    "data": {"config.yaml": "secret: no"}})
    kubectl("apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}))
    account = tmp_path_factory.mktemp("serviceaccount")
    view = json.loads(kubectl("config", "view", "--raw", "--minify", "-o", "json").stdout)
    server = urllib.parse.urlsplit(view["clusters"][0]["cluster"]["server"])
    cluster_info = view["clusters"][0]["cluster"]
    if "certificate-authority" in cluster_info:
        (account / "ca.crt").write_bytes(Path(cluster_info["certificate-authority"]).read_bytes())
    else:
        import base64

        (account / "ca.crt").write_bytes(base64.b64decode(cluster_info["certificate-authority-data"]))
    token = kubectl("create", "token", "-n", namespace, NAME).stdout.strip()
    (account / "token").write_text(token)
    (account / "namespace").write_text(namespace)
    yield {"namespace": namespace, "account": account, "token": token, "peer_port": peer_port,
           "server": (server.hostname, server.port), "kubeconfig": cluster}
    kubectl("delete", "namespace", namespace, "--wait=false", check=False)


@pytest.fixture(scope="module")
def relay(tier: dict[str, Any]) -> Iterator[Relay]:
    r = Relay(tier["server"])
    yield r
    r.close()


@pytest.fixture(scope="module")
def proxy(tier: dict[str, Any], relay: Relay, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """memcached + the proxy with --config (the file a pod mounts) and --config-map."""
    config = tmp_path_factory.mktemp("mounted") / "config.yaml"
    config.write_text(ring_text(1, 1, tier["peer_port"]))
    memcached = start_memcached()
    env = {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(relay.port),
           "CACHEPROXY_SERVICEACCOUNT_DIR": str(tier["account"])}
    proc = start_proxy(memcached.addr, env=env,
                       args=["--config", str(config), "--config-map", CONFIG_MAP, "--ring-self", "m0",
                             "--ring-peer-listen", f"127.0.0.1:{tier['peer_port']}"])
    proc.extra["file"] = config
    proc.extra["log_path"] = proc.extra["log"]
    poll(lambda: metrics(proc.extra["admin"]).get("cacheproxy_config_watch_up") == 1, timeout=20,
         what="the watch to open")
    yield proc
    proc.stop()
    memcached.stop()


def put_config(kube: Any, namespace: str, text: str) -> float:
    """Write the ConfigMap's key; the time the write was sent (monotonic)."""
    started = time.monotonic()
    kube.merge_patch(f"/api/v1/namespaces/{namespace}/configmaps/{CONFIG_MAP}", {"data": {"config.yaml": text}})
    return started


def applied_after(proxy: Any, generation: int, since: float, timeout: float = 30.0) -> float:
    """Seconds from SINCE until the proxy's GET /ring shows GENERATION (polled every 10 ms)."""
    url = f"http://{proxy.extra['admin']}/ring"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if get_json(url)["generation"] == generation:
            return time.monotonic() - since
        time.sleep(0.01)
    raise AssertionError(f"generation {generation} not applied within {timeout}s; /ring: {get_json(url)}")


def serves(proxy: Any) -> bool:
    host, port = proxy.addr.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(b"set watched 0 0 2\r\nok\r\nget watched\r\n")
        return recv_until(s, b"END\r\n") == b"STORED\r\nVALUE watched 0 2\r\nok\r\nEND\r\n"


def test_a_configmap_change_applies_within_a_second(kube: Any, tier: dict[str, Any], proxy: Any) -> None:
    ns, peer = tier["namespace"], tier["peer_port"]
    seconds = []
    for generation in range(2, 7):
        started = put_config(kube, ns, ring_text(generation, 1 + generation % 2, peer))
        seconds.append(applied_after(proxy, generation, started, timeout=APPLY_WITHIN + 5))
    print(f"\nConfigMap write -> GET /ring (s): {', '.join(f'{s:.3f}' for s in seconds)}")
    assert max(seconds) < APPLY_WITHIN, seconds
    ring = get_json(f"http://{proxy.extra['admin']}/ring")
    assert ring["self"] == "m0"  # the command line still overrides the watched text
    assert [m["name"] for m in ring["members"]] == ["m0"]  # generation 6: one member
    assert proxy.extra["file"].read_text() == ring_text(1, 1, peer)  # not the kubelet: the file is untouched
    m = metrics(proxy.extra["admin"])
    assert m['cacheproxy_config_updates_total{result="applied",source="watch"}'] >= 5
    assert m['cacheproxy_config_watch_events_total{type="modified"}'] >= 5


def test_the_kubelets_copy_neither_reapplies_nor_undoes_the_watch(kube: Any, tier: dict[str, Any], proxy: Any) -> None:
    ns, peer, admin = tier["namespace"], tier["peer_port"], proxy.extra["admin"]
    started = put_config(kube, ns, ring_text(7, 1, peer))
    applied_after(proxy, 7, started)
    before = metrics(admin)
    # the kubelet delivers what the watch already applied: nothing happens
    proxy.extra["file"].write_text(ring_text(7, 1, peer))
    poll(lambda: metrics(admin).get('cacheproxy_config_updates_total{result="unchanged",source="file"}', 0)
         > before.get('cacheproxy_config_updates_total{result="unchanged",source="file"}', 0), what="file seen")
    # a lagging kubelet delivers an earlier text: skipped, the ring stays at 7
    proxy.extra["file"].write_text(ring_text(5, 2, peer))
    poll(lambda: metrics(admin).get('cacheproxy_config_updates_total{result="superseded",source="file"}', 0) >= 1,
         what="the older file skipped")
    assert get_json(f"http://{admin}/ring")["generation"] == 7
    ok = 'cacheproxy_config_reloads_total{result="ok"}'
    assert metrics(admin)[ok] == before[ok]


def test_an_invalid_text_is_refused_and_the_proxy_keeps_serving(kube: Any, tier: dict[str, Any], proxy: Any) -> None:
    ns, peer, admin = tier["namespace"], tier["peer_port"], proxy.extra["admin"]
    refused = metrics(admin).get('cacheproxy_config_updates_total{result="refused",source="watch"}', 0)
    generation = get_json(f"http://{admin}/ring")["generation"]
    for broken in (ring_text(99, 1, peer, extra="no_such_key: 1\n"), "ring: [\n", "- a list\n"):
        put_config(kube, ns, broken)
        refused += 1
        poll(lambda r=refused: metrics(admin).get(
            'cacheproxy_config_updates_total{result="refused",source="watch"}', 0) >= r, what="refused")
        assert get_json(f"http://{admin}/ring")["generation"] == generation
        assert serves(proxy)
    started = put_config(kube, ns, ring_text(generation + 1, 1, peer))
    assert applied_after(proxy, generation + 1, started) < APPLY_WITHIN
    log = Path(proxy.extra["log_path"]).read_text()
    assert "unknown config keys: no_such_key" in log and "refused, the running config keeps serving" in log


def test_cut_connections_a_bad_token_and_the_file_fallback(
    kube: Any, tier: dict[str, Any], relay: Relay, proxy: Any
) -> None:
    ns, peer, admin = tier["namespace"], tier["peer_port"], proxy.extra["admin"]
    generation = get_json(f"http://{admin}/ring")["generation"]
    for _ in range(3):  # connection drops: resumed from the last resourceVersion
        cut = time.monotonic()
        relay.cut()
        poll(lambda: metrics(admin).get("cacheproxy_config_watch_up") == 0 or relay.accepted, timeout=10)
        generation += 1
        started = put_config(kube, ns, ring_text(generation, 1, peer))
        print(f"\nafter a cut: applied {applied_after(proxy, generation, started):.3f}s after the write, "
              f"{time.monotonic() - cut:.3f}s after the cut")
    # the token file is read at every reconnect: a revoked one is refused (401), a new one works
    (tier["account"] / "token").write_text("not-a-token")
    relay.cut()
    poll(lambda: metrics(admin).get('cacheproxy_config_watch_reconnects_total{reason="unauthorized"}', 0) >= 1,
         what="401 with the bad token")
    # meanwhile the kubelet's file is the fallback, and applies
    generation += 1
    proxy.extra["file"].write_text(ring_text(generation, 1, peer))
    poll(lambda: get_json(f"http://{admin}/ring")["generation"] == generation, what="the file applied")
    (tier["account"] / "token").write_text(kubectl("create", "token", "-n", ns, NAME).stdout.strip())
    poll(lambda: metrics(admin).get("cacheproxy_config_watch_up") == 1, timeout=40, what="the watch back")
    generation += 1
    started = put_config(kube, ns, ring_text(generation, 1, peer))
    assert applied_after(proxy, generation, started) < APPLY_WITHIN
    assert proxy.popen.poll() is None


def test_the_apiserver_restarting_and_410_gone(kube: Any, tier: dict[str, Any], proxy: Any) -> None:
    state = Path(tier["kubeconfig"]).parent
    if not (state / "kas.pid").exists():
        pytest.skip("the API server is not this test session's own (KUBECONFIG given): it cannot be restarted")
    ns, peer, admin = tier["namespace"], tier["peer_port"], proxy.extra["admin"]
    gone = metrics(admin).get('cacheproxy_config_watch_reconnects_total{reason="gone"}', 0)
    # writes the proxy's watch does not see: its resume point falls behind the store's
    for i in range(3):
        kube.merge_patch(f"/api/v1/namespaces/{ns}/configmaps/other", {"data": {"n": str(i)}})
    restarted = restart_apiserver(state)
    print(f"\nkube-apiserver back after {restarted:.1f}s")
    poll(lambda: metrics(admin).get('cacheproxy_config_watch_reconnects_total{reason="gone"}', 0) > gone,
         timeout=60, what="410 Gone on resuming, then a relist")
    poll(lambda: metrics(admin).get("cacheproxy_config_watch_up") == 1, timeout=60, what="the watch back")
    generation = get_json(f"http://{admin}/ring")["generation"] + 1
    started = put_config(kube, ns, ring_text(generation, 1, peer))
    assert applied_after(proxy, generation, started) < APPLY_WITHIN
    assert serves(proxy)


def running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def restart_apiserver(state: Path) -> float:
    """Stop the session's kube-apiserver by PID and start it again with the same command line (same
    certificates, signing key and etcd); seconds until it is ready."""
    pid = int((state / "kas.pid").read_text())
    command = Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
    os.kill(pid, signal.SIGTERM)
    try:
        poll(lambda: not running(pid), timeout=15, interval=0.1, what="kube-apiserver stopped by SIGTERM")
    except AssertionError:  # as stop-cluster.sh does
        os.kill(pid, signal.SIGKILL)
        poll(lambda: not running(pid), timeout=15, interval=0.1, what="kube-apiserver stopped by SIGKILL")
    started = time.monotonic()
    with open(state / "kas.log", "ab") as log:
        new = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    (state / "kas.pid").write_text(str(new.pid))
    threading.Thread(target=new.wait, daemon=True).start()  # reaped when stop-cluster.sh stops it
    poll(lambda: kubectl("get", "--raw", "/readyz", check=False).returncode == 0, timeout=90, interval=0.25,
         what="kube-apiserver ready again")
    return time.monotonic() - started


def api(tier: dict[str, Any], method: str, path: str, body: dict | None = None) -> int:
    """METHOD PATH as the tier's ServiceAccount; the HTTP status."""
    host, port = tier["server"]
    context = ssl.create_default_context(cafile=str(tier["account"] / "ca.crt"))
    headers = {"Authorization": f"Bearer {tier['token']}", "Accept": "application/json"}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/merge-patch+json" if method == "PATCH" else "application/json"
    request = urllib.request.Request(f"https://{host}:{port}{path}", data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as answer:
            answer.read()
            return answer.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_the_token_reads_its_configmap_and_nothing_else(tier: dict[str, Any]) -> None:
    ns = tier["namespace"]
    base = f"/api/v1/namespaces/{ns}"
    mine = f"fieldSelector=metadata.name%3D{CONFIG_MAP}"
    allowed = [
        ("GET", f"{base}/configmaps/{CONFIG_MAP}"),
        ("GET", f"{base}/configmaps?{mine}"),
        ("GET", f"{base}/configmaps?{mine}&watch=1&timeoutSeconds=1"),
    ]
    refused = [
        ("GET", f"{base}/configmaps"),  # every ConfigMap
        ("GET", f"{base}/configmaps/other"),
        ("GET", f"{base}/configmaps?fieldSelector=metadata.name%3Dother"),
        ("GET", f"{base}/configmaps?watch=1&timeoutSeconds=1"),
        ("PATCH", f"{base}/configmaps/{CONFIG_MAP}"),
        ("DELETE", f"{base}/configmaps/{CONFIG_MAP}"),
        ("POST", f"{base}/configmaps"),
        ("GET", f"{base}/secrets"),
        ("GET", f"{base}/pods"),
        ("GET", f"{base}/serviceaccounts/{NAME}"),
        ("GET", f"/api/v1/namespaces/default/configmaps/{CONFIG_MAP}"),
        ("GET", "/api/v1/configmaps"),
        ("GET", f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles"),
        ("GET", f"/apis/apps/v1/namespaces/{ns}/statefulsets"),
    ]
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"a": "b"}}
    assert {path: api(tier, method, path) for method, path in allowed} == {path: 200 for _, path in allowed}
    assert {f"{method} {path}": api(tier, method, path, body if method in ("PATCH", "POST") else None)
            for method, path in refused} == {f"{method} {path}": 403 for method, path in refused}
    # and what the API server says the token may do in the namespace: that Role's rule, and otherwise
    # exactly what a ServiceAccount bound to nothing may do (the defaults every authenticated user has)
    kubectl("create", "serviceaccount", "-n", ns, "nobody")
    nobody = kubectl("create", "token", "-n", ns, "nobody").stdout.strip()
    ours, baseline = rules_review(tier, tier["token"]), rules_review(tier, nobody)
    assert [rule for rule in ours if rule not in baseline] == [
        {"verbs": ["get", "list", "watch"], "apiGroups": [""], "resources": ["configmaps"],
         "resourceNames": [CONFIG_MAP]}]
    assert [rule for rule in baseline if rule not in ours] == []


def rules_review(tier: dict[str, Any], token: str) -> list[dict[str, Any]]:
    """The resource rules the API server reports for TOKEN in the tier's namespace."""
    host, port = tier["server"]
    review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectRulesReview",
              "spec": {"namespace": tier["namespace"]}}
    context = ssl.create_default_context(cafile=str(tier["account"] / "ca.crt"))
    request = urllib.request.Request(
        f"https://{host}:{port}/apis/authorization.k8s.io/v1/selfsubjectrulesreviews", method="POST",
        data=json.dumps(review).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10, context=context) as answer:
        return json.loads(answer.read())["status"]["resourceRules"]
