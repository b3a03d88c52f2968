"""mTLS: with --tls-ca a client must present a certificate signed by that CA, still valid."""

from __future__ import annotations

from pymemcache.client.base import Client

from tests.security.support import handshakes, host_port, refused, request, tls_args, tls_connect, wait_for


def test_good_client_certificate_accepted(pki, launch):
    proxy = launch(*tls_args(pki, ca=True))
    client = Client(host_port(proxy.addr), timeout=5, tls_context=pki.client_context(pki.client))
    client.set("k", b"v")
    assert client.get("k") == b"v"
    client.close()
    with tls_connect(proxy.addr, pki.client_context(pki.client)) as s:
        peer = s.getpeercert()
        assert dict(x[0] for x in peer["subject"])["commonName"] == "server"
        assert request(s, b"get k\r\n", b"END\r\n") == b"VALUE k 0 1\r\nv\r\nEND\r\n"


def test_missing_expired_and_foreign_certificates_refused(pki, launch):
    proxy = launch(*tls_args(pki, ca=True))
    before = handshakes(proxy.extra["admin"], "failed")
    assert refused(lambda: tls_connect(proxy.addr, pki.client_context(None)))
    assert refused(lambda: tls_connect(proxy.addr, pki.client_context(pki.expired_client)))
    assert refused(lambda: tls_connect(proxy.addr, pki.client_context(pki.foreign_client)))
    wait_for(lambda: handshakes(proxy.extra["admin"], "failed") >= before + 3, what="3 refusals counted")
    # and the good one still gets in, on the same listener
    assert not refused(lambda: tls_connect(proxy.addr, pki.client_context(pki.client)))


def test_without_ca_no_client_certificate_needed(pki, launch):
    proxy = launch(*tls_args(pki))
    assert not refused(lambda: tls_connect(proxy.addr, pki.client_context(None)))
