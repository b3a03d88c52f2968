"""Who may talk to the cache: the TLS and auth Secrets a tier mounts, the proxy config keys that
point at them, and the cert-manager Certificate that issues the TLS Secret. Pure functions.

- ``spec.tls.secretName``: a kubernetes.io/tls Secret with ``tls.crt``, ``tls.key`` and ``ca.crt``.
  The client port speaks TLS with it (mTLS against ``ca.crt`` when ``spec.tls.clientAuth``), and
  the ring's peer port always speaks mutual TLS with it: every member presents ``tls.crt`` and
  requires a certificate signed by ``ca.crt`` (so the certificate needs the serverAuth and
  clientAuth usages).
- ``spec.tls.issuerRef``: cert-manager issues that Secret (NAME-tls unless secretName names it)
  through a Certificate NAME-tls naming the client Service and every pod's member name.
- ``spec.auth.secretName``: a Secret whose ``authfile`` key is a memcached ``-Y`` file.

Secrets are mounted as whole secret volumes (never subPath), read-only: the kubelet replaces the
files when a Secret changes and the proxy reloads them (certificates polled each second, the auth
file too), so a rotation needs no rollout. Nothing from a Secret (content, resourceVersion) goes
into the pod template: only the Secret's name, in the volume.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cacheproxy_operator.manifests.common import Owner, headless_name, metadata
from cacheproxy_operator.manifests.ring import member_names

CERT_MANAGER_API = "cert-manager.io/v1"
TLS_DIR = "/etc/cacheproxy-tls"
AUTH_DIR = "/etc/cacheproxy-auth"
TLS_KEYS = ("tls.crt", "tls.key", "ca.crt")
AUTH_KEY = "authfile"
SECRET_MODE = 0o440  # owner and group (the pod's fsGroup) only: the proxy runs as that group


def tls_secret_name(owner: Owner, spec: dict[str, Any]) -> str | None:
    """The TLS Secret the pods mount, or None without spec.tls."""
    tls = spec.get("tls")
    if not tls:
        return None
    return tls.get("secretName") or f"{owner.name}-tls"


def auth_secret_name(spec: dict[str, Any]) -> str | None:
    auth = spec.get("auth")
    return auth.get("secretName") if auth else None


def certificate_name(owner: Owner) -> str:
    return f"{owner.name}-tls"


def wants_certificate(spec: dict[str, Any]) -> bool:
    return bool((spec.get("tls") or {}).get("issuerRef"))


def required_keys(owner: Owner, spec: dict[str, Any]) -> dict[str, list[tuple[str, str]]]:
    """Secret name -> [(key, the spec field that asks for it)], for every Secret the pods mount."""
    out: dict[str, list[tuple[str, str]]] = {}
    tls_secret = tls_secret_name(owner, spec)
    if tls_secret:
        field = "spec.tls.secretName" if spec["tls"].get("secretName") else "spec.tls.issuerRef"
        out.setdefault(tls_secret, []).extend((key, field) for key in TLS_KEYS)
    auth_secret = auth_secret_name(spec)
    if auth_secret:
        out.setdefault(auth_secret, []).append((AUTH_KEY, "spec.auth.secretName"))
    return out


def secret_problems(
    owner: Owner, spec: dict[str, Any], secrets: Mapping[str, dict[str, Any] | None]
) -> list[tuple[str, str]]:
    """(reason, message) for every Secret the pods need that is missing or lacks a key.

    SECRETS maps each name of :func:`required_keys` to the Secret as read (None: not found). Only
    the key names are looked at, never the values.
    """
    problems: list[tuple[str, str]] = []
    for name, wanted in required_keys(owner, spec).items():
        secret = secrets.get(name)
        fields = sorted({field for _, field in wanted})
        if secret is None:
            issuing = " (cert-manager has not issued it yet)" if "spec.tls.issuerRef" in fields else ""
            problems.append(
                ("SecretMissing", f"Secret {name} ({', '.join(fields)}) not found in {owner.namespace}{issuing}; "
                                  "the pods wait for it to mount")
            )
            continue
        present = set(secret.get("data") or {}) | set(secret.get("stringData") or {})
        missing = [key for key, _ in wanted if key not in present]
        if missing:
            problems.append(
                ("SecretInvalid", f"Secret {name} ({', '.join(fields)}) has no key {', '.join(missing)}; "
                                  "the pods wait for it to mount")
            )
    return problems


def proxy_security_config(spec: dict[str, Any]) -> dict[str, Any]:
    """The config file's tls_* and auth_file keys (paths inside the mounted Secrets)."""
    out: dict[str, Any] = {}
    tls = spec.get("tls")
    if tls:
        out["tls_cert"] = f"{TLS_DIR}/tls.crt"
        out["tls_key"] = f"{TLS_DIR}/tls.key"
        if tls.get("clientAuth"):
            out["tls_ca"] = f"{TLS_DIR}/ca.crt"
    if spec.get("auth"):
        out["auth_file"] = f"{AUTH_DIR}/{AUTH_KEY}"
    return out


def peer_tls_config(spec: dict[str, Any]) -> dict[str, str]:
    """The ring section's peer_tls_* keys: the peers use spec.tls's Secret, always mutually."""
    if not spec.get("tls"):
        return {}
    return {
        "peer_tls_cert": f"{TLS_DIR}/tls.crt",
        "peer_tls_key": f"{TLS_DIR}/tls.key",
        "peer_tls_ca": f"{TLS_DIR}/ca.crt",
    }


def secret_volumes(owner: Owner, spec: dict[str, Any]) -> list[dict[str, Any]]:
    volumes = []
    tls_secret = tls_secret_name(owner, spec)
    if tls_secret:
        volumes.append(_secret_volume("tls", tls_secret, TLS_KEYS))
    auth_secret = auth_secret_name(spec)
    if auth_secret:
        volumes.append(_secret_volume("auth", auth_secret, (AUTH_KEY,)))
    return volumes


def _secret_volume(volume: str, secret: str, keys: tuple[str, ...]) -> dict[str, Any]:
    return {
        "name": volume,
        "secret": {
            "secretName": secret,
            "items": [{"key": key, "path": key} for key in keys],
            "defaultMode": SECRET_MODE,
        },
    }


def secret_mounts(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """The proxy container's mounts: whole directories, so the kubelet's updates reach the files."""
    mounts = []
    if spec.get("tls"):
        mounts.append({"name": "tls", "mountPath": TLS_DIR, "readOnly": True})
    if spec.get("auth"):
        mounts.append({"name": "auth", "mountPath": AUTH_DIR, "readOnly": True})
    return mounts


def dns_names(owner: Owner, pods: int) -> list[str]:
    """The client Service's names, the headless Service's, and every pod's member name."""
    ns = owner.namespace
    return [
        owner.name,
        f"{owner.name}.{ns}",
        f"{owner.name}.{ns}.svc",
        f"{headless_name(owner)}.{ns}.svc",
        *member_names(owner, pods),
    ]


def certificate(owner: Owner, spec: dict[str, Any], pods: int) -> dict[str, Any]:
    """The cert-manager Certificate that issues the TLS Secret (both usages: the peers need both)."""
    issuer = spec["tls"]["issuerRef"]
    return {
        "apiVersion": CERT_MANAGER_API,
        "kind": "Certificate",
        "metadata": metadata(owner, spec, certificate_name(owner)),
        "spec": {
            "secretName": tls_secret_name(owner, spec),
            "commonName": f"{owner.name}.{owner.namespace}.svc",
            "dnsNames": dns_names(owner, pods),
            "usages": ["digital signature", "key encipherment", "server auth", "client auth"],
            "issuerRef": {
                "name": issuer["name"],
                "kind": issuer.get("kind", "Issuer"),
                "group": issuer.get("group", "cert-manager.io"),
            },
        },
    }
