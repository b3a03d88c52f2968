"""spec.tls and spec.auth against a genuine API server: the named Secrets become read-only volumes and
config paths, a rotated Secret changes nothing the pods are made from, a missing Secret is reported
in the conditions, a Certificate is made only where cert-manager's API is served, and the operator
does all of it with get-only access to Secrets."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
import yaml
from cacheproxy_operator.reconcile import reconcile

from tests.operator.conftest import kubectl, new_namespace
from tests.operator.test_integration import (
    FakeProxies,
    condition,
    converged,
    create_cacheproxy,
    events,
    get_cr,
    least_privileged_operator,
    patch_spec,
)
from tests.support.wait import poll

pytestmark = pytest.mark.cluster
CERT_CRD = Path(__file__).resolve().parent / "certificate-crd-minimal.yaml"
CERT_API = "cert-manager.io/v1"


@pytest.fixture(scope="module", autouse=True)
def proxies(cluster: str) -> Any:
    """Each pod's GET /ring as its proxy would answer once it has read the ConfigMap (no kubelet)."""
    import cacheproxy_operator.handlers as handlers
    from cacheproxy_operator.kube import Kube, new_api_client

    fake = FakeProxies(Kube(new_api_client()))
    original, handlers.fetch_ring = handlers.fetch_ring, fake
    yield fake
    handlers.fetch_ring = original


def put_secret(kube: Any, namespace: str, name: str, data: dict[str, str], type_: str = "Opaque") -> dict[str, Any]:
    body = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "type": type_,
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    }
    kubectl("apply", "-f", "-", stdin=yaml.safe_dump(body))
    return kube.get("v1", "Secret", namespace, name)


def tls_secret(kube: Any, namespace: str, name: str, generation: int = 1) -> dict[str, Any]:
    """Key names are what the operator checks; the content is never read by it (nor valid PEM here)."""
    return put_secret(
        kube,
        namespace,
        name,
        {"tls.crt": f"certificate {generation}", "tls.key": f"key {generation}", "ca.crt": "ca"},
        "kubernetes.io/tls",
    )


def template(kube: Any, namespace: str, name: str) -> tuple[int, dict[str, Any]]:
    workload = kube.get("apps/v1", "StatefulSet", namespace, name)
    return workload["metadata"]["generation"], workload["spec"]["template"]


def test_tls_and_auth_secrets_are_mounted_and_rotate_without_a_rollout(
    kube: Any, namespace: str, operator: Any
) -> None:
    tls_secret(kube, namespace, "tier-cert")
    put_secret(kube, namespace, "tier-users", {"authfile": "app:secret\n"})
    create_cacheproxy(
        kube,
        namespace,
        "secure",
        {"tls": {"secretName": "tier-cert", "clientAuth": True}, "auth": {"secretName": "tier-users"}},
    )
    cr = poll(lambda: converged(kube, namespace, "secure"), what="reconcile with TLS and auth")
    assert condition(cr, "TLS") == ("True", "SecretProvided")
    generation, pod = template(kube, namespace, "secure")
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert volumes["tls"]["secret"]["secretName"] == "tier-cert"
    assert volumes["auth"]["secret"]["secretName"] == "tier-users"
    assert {v["secret"]["defaultMode"] for v in (volumes["tls"], volumes["auth"])} == {0o440}
    proxy = next(c for c in pod["spec"]["containers"] if c["name"] == "cacheproxy")
    mounts = {m["name"]: m for m in proxy["volumeMounts"]}
    assert mounts["tls"]["readOnly"] is True and mounts["auth"]["readOnly"] is True
    assert "subPath" not in mounts["tls"] and "subPath" not in mounts["auth"]
    config = yaml.safe_load(kube.get("v1", "ConfigMap", namespace, "secure-config")["data"]["config.yaml"])
    assert config["tls_ca"] == "/etc/cacheproxy-tls/ca.crt" and config["auth_file"] == "/etc/cacheproxy-auth/authfile"
    assert config["ring"]["peer_tls_cert"] == "/etc/cacheproxy-tls/tls.crt"

    # rotation: new Secret content reaches the pods through the kubelet, never through a rollout
    tls_secret(kube, namespace, "tier-cert", generation=2)
    put_secret(kube, namespace, "tier-users", {"authfile": "app:rotated\n"})
    posted: list[tuple[str, str, str]] = []
    outcome = reconcile(kube, get_cr(kube, namespace, "secure"), lambda *event: posted.append(event))
    assert (outcome.created, outcome.updated, outcome.deleted, outcome.error) == ([], [], [], None)
    assert template(kube, namespace, "secure") == (generation, pod)


def test_a_missing_secret_shows_in_the_conditions_until_it_exists(kube: Any, namespace: str, operator: Any) -> None:
    tls_secret(kube, namespace, "partial-cert")
    create_cacheproxy(
        kube, namespace, "waiting", {"tls": {"secretName": "partial-cert"}, "auth": {"secretName": "waiting-users"}}
    )

    def degraded() -> dict[str, Any] | None:
        cr = get_cr(kube, namespace, "waiting")
        return cr if condition(cr, "Degraded") == ("True", "SecretMissing") else None

    cr = poll(degraded, what="Degraded=SecretMissing")
    message = next(c["message"] for c in cr["status"]["conditions"] if c["type"] == "Degraded")
    assert "Secret waiting-users (spec.auth.secretName) not found" in message
    assert cr["status"]["phase"] == "Degraded"
    # the children are made all the same: the pods start as soon as the Secret is there
    assert kube.get("apps/v1", "StatefulSet", namespace, "waiting") is not None
    poll(lambda: any(e["reason"] == "SecretMissing" for e in events(namespace, "waiting")), what="warning event")

    put_secret(kube, namespace, "waiting-users", {"wrong-key": "app:secret\n"})
    poll(lambda: condition(get_cr(kube, namespace, "waiting"), "Degraded") == ("True", "SecretInvalid"),
         what="Degraded=SecretInvalid (no authfile key)")
    put_secret(kube, namespace, "waiting-users", {"authfile": "app:secret\n"})
    poll(lambda: converged(kube, namespace, "waiting"), what="healthy once the Secret is complete")


def test_a_certificate_only_where_cert_managers_api_is_served(kube: Any, namespace: str, operator: Any) -> None:
    if kube.serves(CERT_API):
        pytest.fail("this test installs and removes the Certificate CRD; use a cluster without cert-manager")
    create_cacheproxy(kube, namespace, "issued", {"replicas": 2, "tls": {"issuerRef": {"name": "tier-ca"}}})
    cr = poll(
        lambda: (c := get_cr(kube, namespace, "issued")) and condition(c, "TLS") == ("False", "APINotServed") and c,
        what="TLS=False without the API",
    )
    assert condition(cr, "Degraded") == ("True", "SecretMissing")  # nobody issues issued-tls
    kubectl("apply", "-f", str(CERT_CRD))
    try:
        kubectl("wait", "--for=condition=Established", "--timeout=30s", "crd/certificates.cert-manager.io")
        cert = poll(
            lambda: kube.get(CERT_API, "Certificate", namespace, "issued-tls"),
            what="Certificate created once the API is served",
        )
        spec = cert["spec"]
        assert spec["secretName"] == "issued-tls"
        assert spec["issuerRef"] == {"name": "tier-ca", "kind": "Issuer", "group": "cert-manager.io"}
        assert {"server auth", "client auth"} <= set(spec["usages"])
        assert f"issued.{namespace}.svc" in spec["dnsNames"]
        assert [f"issued-{i}.issued-headless.{namespace}.svc" for i in range(2)] == spec["dnsNames"][-2:]
        assert cert["metadata"]["ownerReferences"][0]["uid"] == cr["metadata"]["uid"]
        poll(
            lambda: condition(get_cr(kube, namespace, "issued"), "TLS") == ("True", "CertificateCreated"),
            what="TLS=True",
        )
        tls_secret(kube, namespace, "issued-tls")  # what cert-manager would write
        poll(lambda: converged(kube, namespace, "issued"), what="healthy once the Secret is issued")
        # a Certificate deleted by hand is restored; switching to a provided Secret prunes it
        kubectl("delete", "-n", namespace, "certificates.cert-manager.io/issued-tls")
        poll(lambda: kube.get(CERT_API, "Certificate", namespace, "issued-tls"), what="Certificate restored")
        patch_spec(kube, namespace, "issued", {"tls": {"issuerRef": None, "secretName": "issued-tls"}})
        poll(lambda: kube.get(CERT_API, "Certificate", namespace, "issued-tls") is None, what="Certificate pruned")
        assert condition(poll(lambda: converged(kube, namespace, "issued"), what="converged"), "TLS") == (
            "True",
            "SecretProvided",
        )
    finally:
        kubectl("delete", "-f", str(CERT_CRD), "--wait=true", check=False)


def test_secrets_need_only_get_access(cluster: str, kube: Any, tmp_path: Path) -> None:
    """With exactly the rules in cacheproxy_operator.rbac (Secrets: get), TLS and auth converge."""
    namespace = new_namespace("cproxy-secrets")
    with least_privileged_operator(kube, cluster, namespace, tmp_path):
        tls_secret(kube, namespace, "least-cert")
        put_secret(kube, namespace, "least-users", {"authfile": "app:secret\n"})
        create_cacheproxy(
            kube, namespace, "least", {"tls": {"secretName": "least-cert"}, "auth": {"secretName": "least-users"}}
        )
        cr = poll(lambda: converged(kube, namespace, "least"), what="convergence with get-only Secrets")
        assert condition(cr, "TLS") == ("True", "SecretProvided")
