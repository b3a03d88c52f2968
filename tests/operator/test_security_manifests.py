"""Who may talk to the cache, as the pure builders express it: the TLS and auth Secrets as read-only
volumes, the config keys pointing into them (the peers' mTLS included), the cert-manager Certificate,
a pod template that never carries Secret content, the NetworkPolicy's peer rule, and the status a
missing Secret gets."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml
from cacheproxy.config import load
from cacheproxy.config.ring import parse as parse_ring
from cacheproxy_operator.manifests import Capabilities, Owner, build
from cacheproxy_operator.manifests.common import CONFIG_HASH_ANNOTATION, selector_labels
from cacheproxy_operator.manifests.security import required_keys, secret_problems
from cacheproxy_operator.reconcile import tls_state
from cacheproxy_operator.spec import semantic_errors, with_defaults
from cacheproxy_operator.status import Observation, compute_status, transitions

from tests.security.certs import Authority

OWNER = Owner(name="cache", namespace="apps", uid="5f1c1e9a-0000-4000-8000-000000000001")
TLS = {"tls": {"secretName": "cache-cert"}}
MTLS = {"tls": {"secretName": "cache-cert", "clientAuth": True}}
ISSUED = {"tls": {"issuerRef": {"name": "tier-ca"}}}
AUTH = {"auth": {"secretName": "cache-users"}}


def kids(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["kind"] + "/" + m["metadata"]["name"]: m for m in build(OWNER, with_defaults(spec)).desired}


def pod_of(spec: dict[str, Any]) -> dict[str, Any]:
    return kids(spec)["StatefulSet/cache"]["spec"]["template"]["spec"]


def proxy_of(spec: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in pod_of(spec)["containers"] if c["name"] == "cacheproxy")


def config_of(spec: dict[str, Any]) -> dict[str, Any]:
    return yaml.safe_load(kids(spec)["ConfigMap/cache-config"]["data"]["config.yaml"])


def test_a_tls_secret_is_mounted_read_only_and_named_in_the_config() -> None:
    volumes = {v["name"]: v for v in pod_of(TLS)["volumes"]}
    assert volumes["tls"]["secret"] == {
        "secretName": "cache-cert",
        "items": [{"key": k, "path": k} for k in ("tls.crt", "tls.key", "ca.crt")],
        "defaultMode": 0o440,
    }
    mounts = {m["name"]: m for m in proxy_of(TLS)["volumeMounts"]}
    # a whole directory, never subPath: the kubelet's update of a rotated Secret reaches the files
    assert mounts["tls"] == {"name": "tls", "mountPath": "/etc/cacheproxy-tls", "readOnly": True}
    config = config_of(TLS)
    assert (config["tls_cert"], config["tls_key"]) == ("/etc/cacheproxy-tls/tls.crt", "/etc/cacheproxy-tls/tls.key")
    assert "tls_ca" not in config  # no client certificates asked for without clientAuth
    assert config_of(MTLS)["tls_ca"] == "/etc/cacheproxy-tls/ca.crt"
    # the peers use the same Secret, always mutually
    assert {k: v for k, v in config["ring"].items() if k.startswith("peer_tls")} == {
        "peer_tls_cert": "/etc/cacheproxy-tls/tls.crt",
        "peer_tls_key": "/etc/cacheproxy-tls/tls.key",
        "peer_tls_ca": "/etc/cacheproxy-tls/ca.crt",
    }
    # the memcached containers see none of it
    for container in pod_of(TLS).get("initContainers", []):
        assert {m["name"] for m in container["volumeMounts"]} == {"sockets"}


def test_the_written_ring_section_is_accepted_by_the_proxy() -> None:
    ring = config_of(MTLS)["ring"]
    settings = parse_ring(ring, self_override="cache-0.cache-headless.apps.svc")
    assert settings.peer_tls and settings.peer_tls_ca == "/etc/cacheproxy-tls/ca.crt"
    plain = parse_ring(config_of({})["ring"], self_override="cache-0.cache-headless.apps.svc")
    assert not plain.peer_tls


def test_the_written_config_file_loads_in_the_proxy(tmp_path, monkeypatch) -> None:
    """The whole file, with the mount paths pointing at real files as the kubelet would mount them."""
    ca = Authority(str(tmp_path))
    peer = ca.issue("tier", server=True, client=True)
    tls_dir, auth_dir = tmp_path / "tls", tmp_path / "auth"
    tls_dir.mkdir(), auth_dir.mkdir()
    for name, source in (("tls.crt", peer.cert), ("tls.key", peer.key), ("ca.crt", ca.ca_file)):
        (tls_dir / name).write_bytes(open(source, "rb").read())
    (auth_dir / "authfile").write_text("app:secret\n")
    text = kids({**MTLS, **AUTH})["ConfigMap/cache-config"]["data"]["config.yaml"]
    text = text.replace("/etc/cacheproxy-tls", str(tls_dir)).replace("/etc/cacheproxy-auth", str(auth_dir))
    path = tmp_path / "config.yaml"
    path.write_text(text)
    monkeypatch.setenv("CACHEPROXY_RING_SELF", "cache-1.cache-headless.apps.svc")
    config = load(path)
    assert (config.tls_cert, config.tls_ca) == (str(tls_dir / "tls.crt"), str(tls_dir / "ca.crt"))
    assert config.auth_file == str(auth_dir / "authfile")
    assert config.ring is not None and config.ring.peer_tls_key == str(tls_dir / "tls.key")


def test_an_auth_secret_becomes_the_auth_file() -> None:
    volumes = {v["name"]: v for v in pod_of(AUTH)["volumes"]}
    assert volumes["auth"]["secret"]["secretName"] == "cache-users"
    assert volumes["auth"]["secret"]["items"] == [{"key": "authfile", "path": "authfile"}]
    mounts = {m["name"]: m for m in proxy_of(AUTH)["volumeMounts"]}
    assert mounts["auth"] == {"name": "auth", "mountPath": "/etc/cacheproxy-auth", "readOnly": True}
    config = config_of(AUTH)
    assert config["auth_file"] == "/etc/cacheproxy-auth/authfile"
    assert "tls_cert" not in config and "peer_tls_cert" not in config["ring"]


def test_no_security_spec_mounts_no_secret() -> None:
    assert not any("secret" in v for v in pod_of({})["volumes"])
    config = config_of({})
    assert not {"tls_cert", "tls_key", "tls_ca", "auth_file"} & set(config)


def test_probes_stay_plain_http_on_the_admin_port() -> None:
    proxy = proxy_of({**MTLS, **AUTH})
    for probe in ("livenessProbe", "readinessProbe"):
        assert proxy[probe]["httpGet"]["port"] == "metrics" and "scheme" not in proxy[probe]["httpGet"]
    assert "admin_tls_listen" not in config_of({**MTLS, **AUTH})


def test_the_pod_template_carries_secret_names_only() -> None:
    template = kids({**MTLS, **AUTH})["StatefulSet/cache"]["spec"]["template"]
    text = json.dumps(template)
    assert "resourceVersion" not in text and "checksum" not in text
    assert set(template["metadata"]["annotations"]) == {CONFIG_HASH_ANNOTATION}
    # Secret content is no input of the builders: what the server holds in the Secret (rotated or
    # not) cannot reach the template; only turning TLS or auth on or off, or renaming the Secret, does.
    plain = kids({})["StatefulSet/cache"]["spec"]["template"]["metadata"]["annotations"][CONFIG_HASH_ANNOTATION]
    hashed = template["metadata"]["annotations"][CONFIG_HASH_ANNOTATION]
    assert hashed != plain  # tls_cert/auth_file are restart-only keys
    renamed = kids({"tls": {"secretName": "other", "clientAuth": True}, **AUTH})["StatefulSet/cache"]["spec"]
    assert renamed["template"]["metadata"]["annotations"][CONFIG_HASH_ANNOTATION] == hashed  # same paths


def test_cert_manager_issues_the_secret_for_the_service_and_every_pod() -> None:
    children = kids({"replicas": 3, **ISSUED})
    cert = children["Certificate/cache-tls"]
    assert cert["apiVersion"] == "cert-manager.io/v1"
    assert cert["metadata"]["ownerReferences"][0]["uid"] == OWNER.uid
    assert cert["spec"]["secretName"] == "cache-tls"
    assert cert["spec"]["issuerRef"] == {"name": "tier-ca", "kind": "Issuer", "group": "cert-manager.io"}
    assert {"server auth", "client auth"} <= set(cert["spec"]["usages"])
    assert cert["spec"]["dnsNames"] == [
        "cache",
        "cache.apps",
        "cache.apps.svc",
        "cache-headless.apps.svc",
        *(f"cache-{i}.cache-headless.apps.svc" for i in range(3)),
    ]
    order = list(children)
    assert order.index("Certificate/cache-tls") < order.index("StatefulSet/cache")
    volumes = {v["name"]: v for v in children["StatefulSet/cache"]["spec"]["template"]["spec"]["volumes"]}
    assert volumes["tls"]["secret"]["secretName"] == "cache-tls"
    named = kids({"tls": {"issuerRef": {"name": "ca", "kind": "ClusterIssuer"}, "secretName": "mine"}})
    assert named["Certificate/cache-tls"]["spec"]["secretName"] == "mine"
    assert named["Certificate/cache-tls"]["spec"]["issuerRef"]["kind"] == "ClusterIssuer"


def test_no_certificate_without_the_api_or_without_an_issuer() -> None:
    plan = build(OWNER, with_defaults(ISSUED), Capabilities(cert_manager=False))
    assert "Certificate" not in {m["kind"] for m in plan.desired}
    assert ("cert-manager.io/v1", "Certificate") not in plan.absent  # nothing to list or prune
    provided = build(OWNER, with_defaults(TLS))
    assert "Certificate" not in {m["kind"] for m in provided.desired}
    assert ("cert-manager.io/v1", "Certificate") in provided.absent  # one made earlier is pruned


def test_tls_condition_says_where_the_certificate_comes_from() -> None:
    assert tls_state(OWNER, with_defaults({}), Capabilities())[:2] == ("False", "Disabled")
    assert tls_state(OWNER, with_defaults(TLS), Capabilities())[:2] == ("True", "SecretProvided")
    assert tls_state(OWNER, with_defaults(ISSUED), Capabilities())[:2] == ("True", "CertificateCreated")
    status, reason, message = tls_state(OWNER, with_defaults(ISSUED), Capabilities(cert_manager=False))
    assert (status, reason) == ("False", "APINotServed")
    assert "cert-manager.io/v1" in message and "cache-tls" in message


def secret(*keys: str) -> dict[str, Any]:
    return {"metadata": {"name": "x"}, "data": {k: "c2VjcmV0" for k in keys}}


def test_missing_secrets_and_keys_are_named() -> None:
    spec = with_defaults({**MTLS, **AUTH})
    assert required_keys(OWNER, spec) == {
        "cache-cert": [("tls.crt", "spec.tls.secretName"), ("tls.key", "spec.tls.secretName"),
                       ("ca.crt", "spec.tls.secretName")],
        "cache-users": [("authfile", "spec.auth.secretName")],
    }
    fine = {"cache-cert": secret("tls.crt", "tls.key", "ca.crt"), "cache-users": secret("authfile")}
    assert secret_problems(OWNER, spec, fine) == []
    missing = secret_problems(OWNER, spec, {**fine, "cache-users": None})
    assert [reason for reason, _ in missing] == ["SecretMissing"]
    assert "Secret cache-users (spec.auth.secretName) not found in apps" in missing[0][1]
    no_ca = secret_problems(OWNER, spec, {**fine, "cache-cert": secret("tls.crt", "tls.key")})
    assert no_ca == [("SecretInvalid", "Secret cache-cert (spec.tls.secretName) has no key ca.crt; "
                                       "the pods wait for it to mount")]
    issued = secret_problems(OWNER, with_defaults(ISSUED), {})
    assert issued[0][0] == "SecretMissing" and "cert-manager has not issued it yet" in issued[0][1]


def test_a_missing_secret_makes_the_tier_degraded_and_says_which() -> None:
    spec = with_defaults({**TLS, **AUTH})
    problems = secret_problems(OWNER, spec, {"cache-cert": secret("tls.crt", "tls.key", "ca.crt")})
    status = compute_status(Observation(1, spec, None, [], secret_problems=problems), {}, "2026-01-01T00:00:00Z")
    degraded = next(c for c in status["conditions"] if c["type"] == "Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", "SecretMissing")
    assert "cache-users" in degraded["message"]
    assert status["phase"] == "Degraded"
    assert ("Warning", "SecretMissing", degraded["message"]) in transitions({}, status)
    fixed = compute_status(Observation(1, spec, None, []), status, "2026-01-01T00:01:00Z")
    assert next(c for c in fixed["conditions"] if c["type"] == "Degraded")["reason"] == "AsExpected"


def test_no_cert_manager_api_posts_one_warning() -> None:
    spec = with_defaults(ISSUED)
    obs = Observation(1, spec, None, [], tls=tls_state(OWNER, spec, Capabilities(cert_manager=False)))
    first = compute_status(obs, {}, "2026-01-01T00:00:00Z")
    assert [e[1] for e in transitions({}, first) if e[1] == "NoCertManagerAPI"] == ["NoCertManagerAPI"]
    assert not [e for e in transitions(first, compute_status(obs, first, "2026-01-01T00:01:00Z"))
                if e[1] == "NoCertManagerAPI"]


@pytest.mark.parametrize("tls", [{}, {"clientAuth": True}])
def test_tls_needs_a_secret_or_an_issuer(tls: dict[str, Any]) -> None:
    assert any("tls needs secretName" in e for e in semantic_errors(with_defaults({"tls": tls})))
    assert semantic_errors(with_defaults(TLS)) == [] and semantic_errors(with_defaults(ISSUED)) == []


def test_network_policy_admits_the_peer_port_from_the_tiers_pods_only() -> None:
    spec = {"networkPolicy": {"enabled": True}, **MTLS}
    policy = kids(spec)["NetworkPolicy/cache"]["spec"]
    peer_port = with_defaults(spec)["proxy"]["ports"]["peer"]
    rules = [r for r in policy["ingress"] if {"protocol": "TCP", "port": peer_port} in r["ports"]]
    assert rules == [
        {"from": [{"podSelector": {"matchLabels": selector_labels(OWNER)}}],
         "ports": [{"protocol": "TCP", "port": peer_port}]}
    ]
    # the clients' rule (every pod of the namespace by default) names the client port only
    clients = policy["ingress"][0]
    assert clients["ports"] == [{"protocol": "TCP", "port": 11211}]
