"""The admin port with admin_tls_listen: /metrics over TLS, /healthz and /readyz still plain on
the admin port (for the kubelet), /metrics gone from it. Also TLS with --workers and with auth."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.security.support import http_status, metrics, request, tls_args, tls_connect
from tests.support.procs import free_port


def test_metrics_over_tls_health_plain(pki, launch):
    tls_admin = f"127.0.0.1:{free_port()}"
    proxy = launch(*tls_args(pki, ca=True), config=f"admin_tls_listen: {tls_admin}\n")
    admin = proxy.extra["admin"]
    assert http_status(f"http://{admin}/healthz") == 200
    assert http_status(f"http://{admin}/readyz") == 200
    assert http_status(f"http://{admin}/metrics") == 404  # not in plaintext any more
    ctx = pki.client_context()  # server-authenticated only: Prometheus needs no client certificate
    m = metrics(f"https://localhost:{tls_admin.rsplit(':', 1)[1]}/metrics", ctx)
    assert m[("cacheproxy_backend_up", (("backend", "l1"),))] == 1
    assert http_status(f"https://localhost:{tls_admin.rsplit(':', 1)[1]}/readyz", ctx) == 200


def test_tls_with_workers(pki, launch):
    proxy = launch(*tls_args(pki), "--workers", "2")
    for _ in range(4):  # SO_REUSEPORT spreads these over both workers
        with tls_connect(proxy.addr, pki.client_context()) as s:
            assert request(s, b"set k 0 0 1\r\nx\r\n") == b"STORED\r\n"


@pytest.mark.skipif(not shutil.which("openssl"), reason="openssl CLI not installed")
def test_tls_and_auth_together(pki, launch, tmp_path):
    """mTLS and the auth file at once: openssl s_client presents its certificate, then authenticates."""
    authfile = tmp_path / "authfile"
    authfile.write_bytes(b"alice:secret\n")
    proxy = launch(*tls_args(pki, ca=True), "--auth-file", str(authfile))
    out = subprocess.run(["openssl", "s_client", "-quiet", "-connect", proxy.addr, "-CAfile", pki.ca.ca_file,
                          "-cert", pki.client.cert, "-key", pki.client.key],
                         input=b"get k\r\nset a 0 0 12\r\nalice secret\r\nset k 0 0 1\r\nx\r\nget k\r\nquit\r\n",
                         capture_output=True, timeout=20)
    # The refused "get k" is answered only if it arrives in a different read than the auth set
    # (memcached answers once per read before authentication); everything after is the same.
    assert out.stdout.endswith(b"STORED\r\nSTORED\r\nVALUE k 0 1\r\nx\r\nEND\r\n"), out.stdout
