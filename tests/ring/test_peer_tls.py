"""The ring's peer port over mutual TLS: a 3-member tier on loopback whose members forward to each
other with the tier's certificate; a client without one, or with one from another CA, is refused
before it reaches the serve-locally path; a rotated certificate is served without a restart."""

from __future__ import annotations

import random
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from cacheproxy.config import load
from cacheproxy.config.ring import parse

from tests.ring.tier import Tier
from tests.security.certs import Authority, Issued, serial_of
from tests.security.support import handshakes, refused, tls_connect, wait_for
from tests.support.procs import recv_until, talk


@dataclass
class PeerPki:
    ca: Authority
    peer: Issued  # the tier's certificate: serverAuth and clientAuth, what every member presents
    other_ca: Authority
    intruder: Issued  # the same usages, from an unrelated CA

    def context(self, cert: Issued | None) -> ssl.SSLContext:
        """A client that trusts the tier's CA (so the server is accepted) and presents CERT."""
        ctx = ssl.create_default_context(cafile=self.ca.ca_file)
        ctx.check_hostname = False
        if cert is not None:
            ctx.load_cert_chain(cert.cert, cert.key)
        return ctx


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PeerPki:
    d = str(tmp_path_factory.mktemp("peer-pki"))
    ca, other = Authority(d), Authority(d, "other-ca")
    return PeerPki(ca, ca.issue("peer", server=True, client=True), other,
                   other.issue("intruder", server=True, client=True))


@pytest.fixture(scope="module")
def tier(pki: PeerPki) -> Iterator[Tier]:
    t = Tier.start(3, peer_tls_cert=pki.peer.cert, peer_tls_key=pki.peer.key, peer_tls_ca=pki.ca.ca_file)
    yield t
    t.stop()



def peer_addr(tier: Tier, i: int) -> str:
    return f"127.0.0.1:{tier.pairs[i].peer_port}"


RING = {"self": "a", "members": [{"name": "a", "peer": "127.0.0.1:1"}, {"name": "b", "peer": "127.0.0.1:2"}]}


def test_the_peer_tls_keys_go_together_and_name_readable_files(tmp_path, pki: PeerPki) -> None:
    with pytest.raises(ValueError, match=r"go together \(missing ring.peer_tls_key, ring.peer_tls_ca\)"):
        parse({**RING, "peer_tls_cert": pki.peer.cert})
    keys = {"peer_tls_cert": pki.peer.cert, "peer_tls_key": pki.peer.key, "peer_tls_ca": pki.ca.ca_file}
    assert parse({**RING, **keys}).peer_tls and not parse(RING).peer_tls
    with pytest.raises(ValueError, match=r"ring\.peer_tls_ca: .* is not a readable file"):
        load(None, {"l1": "127.0.0.1:1", "ring": {**RING, **keys, "peer_tls_ca": str(tmp_path / "absent.pem")}})


def test_forwarded_keys_work_over_mtls(tier: Tier) -> None:
    rng = random.Random(7)
    keys = [b"mtls:%d" % i for i in range(300)]
    for key in keys:
        via = tier.pairs[rng.randrange(3)].addr
        assert talk(via, b"set %s 0 0 %d\r\n%s\r\n" % (key, len(key), key), b"\r\n") == b"STORED\r\n"
    for key in keys:
        owner = tier.owner(key)
        reader = tier.pairs[(owner + 1) % 3].addr  # never the owner: the read is forwarded
        assert talk(reader, b"get %s\r\n" % key, b"END\r\n") == b"VALUE %s 0 %d\r\n%s\r\nEND\r\n" % (
            key, len(key), key)
        for pair in tier.pairs:
            stored = talk(pair.memcached.addr, b"mg %s v\r\n" % key, b"\r\n").startswith(b"VA")
            assert stored == (pair.index == owner), (key, pair.index)
    for i in range(3):
        # the client ports are plain: every successful handshake is a peer's, on the peer port
        assert handshakes(tier.pairs[i].admin, "ok") > 0
        assert all(m["state"] in ("self", "up") for m in tier.ring_json(i)["members"])


def test_a_plain_client_is_refused_on_the_peer_port(tier: Tier) -> None:
    key = b"mtls:plain-intruder"
    owner = tier.owner(key)
    host, port = peer_addr(tier, owner).rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(b"set %s 0 0 1\r\nx\r\nmn\r\n" % key)
        answer = recv_until(s, b"MN\r\n")  # the server ends the failed handshake: b"" or a TLS alert
    assert b"STORED" not in answer and b"MN" not in answer
    assert talk(tier.pairs[owner].memcached.addr, b"mg %s v\r\n" % key, b"\r\n") == b"EN\r\n"


def test_a_client_without_the_tiers_certificate_is_refused(tier: Tier, pki: PeerPki) -> None:
    addr = peer_addr(tier, 0)
    assert refused(lambda: tls_connect(addr, pki.context(None)))  # no certificate at all
    assert refused(lambda: tls_connect(addr, pki.context(pki.intruder)))  # another CA's
    with tls_connect(addr, pki.context(pki.peer)) as s:  # the tier's own: served
        s.sendall(b"mn\r\n")
        assert recv_until(s, b"MN\r\n") == b"MN\r\n"


def test_a_rotated_peer_certificate_is_served_without_a_restart(tier: Tier, pki: PeerPki) -> None:
    addr = peer_addr(tier, 1)
    with tls_connect(addr, pki.context(pki.peer)) as s:
        before = serial_of(s.getpeercert(binary_form=True))
    rotated = pki.ca.issue("peer", server=True, client=True)  # the same files, rewritten by rename
    assert rotated.serial != before

    def served_serial() -> bool:
        with tls_connect(addr, pki.context(rotated)) as s:
            return serial_of(s.getpeercert(binary_form=True)) == rotated.serial

    wait_for(served_serial, timeout=10, what="the rotated certificate on the peer port")
    key = b"mtls:after-rotation"
    owner = tier.owner(key)
    via = tier.pairs[(owner + 2) % 3].addr  # forwarding goes on across the rotation
    assert talk(via, b"set %s 0 0 1\r\ny\r\n" % key, b"\r\n") == b"STORED\r\n"
    assert talk(tier.pairs[owner].memcached.addr, b"mg %s v\r\n" % key, b"\r\n") == b"VA 1\r\ny\r\n"
