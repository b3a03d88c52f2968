"""Fixtures for the security tests: a PKI in a temp dir, and the proxy started with TLS/auth."""

from __future__ import annotations

import os
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from tests.security.certs import Authority, Issued
from tests.support.procs import Proc, start_proxy


@dataclass
class Pki:
    dir: str
    ca: Authority
    server: Issued
    client: Issued
    expired_client: Issued
    other_ca: Authority
    foreign_client: Issued

    def client_context(self, cert: Issued | None = None, *, verify: bool = True) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=self.ca.ca_file) if verify else ssl._create_unverified_context()
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        if cert is not None:
            ctx.load_cert_chain(cert.cert, cert.key)
        return ctx


@pytest.fixture
def pki(tmp_path) -> Pki:
    d = str(tmp_path)
    ca = Authority(d)
    other = Authority(d, "other-ca")
    return Pki(d, ca, ca.issue("server"), ca.issue("client", server=False),
               ca.issue("expired", server=False, expired=True), other, other.issue("foreign", server=False))


@pytest.fixture
def launch(memcached, tmp_path) -> Iterator[Callable[..., Proc]]:
    """Start proxies in front of the test's memcached (CONFIG: YAML text); all are stopped afterwards."""
    procs: list[Proc] = []

    def start(*args: str, config: str | None = None) -> Proc:
        extra = list(args)
        if config is not None:
            path = os.path.join(str(tmp_path), f"config-{len(procs)}.yaml")
            with open(path, "w") as f:
                f.write(config)
            extra += ["--config", path]
        proc = start_proxy(memcached.addr, args=extra)
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        proc.stop()

