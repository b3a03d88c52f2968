"""Certificate rotation without a restart: the mounted files change, new connections get the new
certificate, established ones keep working (and keep theirs), a half-written pair is not installed."""

from __future__ import annotations

import asyncio
import os
import signal
import ssl
import threading

import pytest
from cacheproxy.security.tls import CertReloader, TlsFiles, peer_contexts, server_context

from tests.security.certs import serial_of
from tests.security.support import request, tls_args, tls_connect, wait_for

CLIENTS = 200


def served_serial(addr: str, ctx: ssl.SSLContext) -> int:
    with tls_connect(addr, ctx) as s:
        assert request(s, b"version\r\n").startswith(b"VERSION")
        return serial_of(s.getpeercert(binary_form=True))


def test_rotation_under_200_tls_clients(pki, launch):
    proxy = launch(*tls_args(pki))
    ctx = pki.client_context()
    clients = [tls_connect(proxy.addr, ctx) for _ in range(CLIENTS)]
    failures: list[str] = []
    stop = threading.Event()
    rounds = [0]

    def keep_asking() -> None:
        """Requests on every established connection, round after round, while the files change."""
        while not stop.is_set() and rounds[0] < 5000:  # bounded: stopped once the rotation is seen
            for i, s in enumerate(clients):
                try:
                    if request(s, b"set k%d 0 0 1\r\nx\r\n" % i) != b"STORED\r\n":
                        failures.append(f"client {i}: bad answer")
                except OSError as exc:
                    failures.append(f"client {i}: {exc!r}")
            rounds[0] += 1

    try:
        old = pki.server.serial
        assert {serial_of(s.getpeercert(binary_form=True)) for s in clients} == {old}
        worker = threading.Thread(target=keep_asking)
        worker.start()
        wait_for(lambda: rounds[0] >= 1, what="a first round of requests")
        # A half-written pair: the new certificate before its key. It must not be installed.
        new = pki.ca.issue("server-next")
        os.replace(new.cert, pki.server.cert)
        log = proxy.extra["log"]
        wait_for(lambda: "do not load" in open(log).read(), what="the mismatched pair reported")
        assert served_serial(proxy.addr, ctx) == old
        os.replace(new.key, pki.server.key)  # now the pair is whole
        wait_for(lambda: served_serial(proxy.addr, ctx) == new.serial, what="new connections on the new certificate")
        start = rounds[0]
        wait_for(lambda: rounds[0] >= start + 1, what="a full round after the rotation")
        stop.set()
        worker.join(30)
        assert failures == []
        # established connections were not dropped and keep the certificate they started with
        for s in clients:
            assert request(s, b"get k0\r\n", b"END\r\n") == b"VALUE k0 0 1\r\nx\r\nEND\r\n"
            assert serial_of(s.getpeercert(binary_form=True)) == old
    finally:
        stop.set()
        for s in clients:
            s.close()


def test_sighup_reloads(pki, launch):
    proxy = launch(*tls_args(pki))
    ctx = pki.client_context()
    new = pki.ca.issue("server-next")
    os.replace(new.key, pki.server.key)
    os.replace(new.cert, pki.server.cert)
    os.kill(proxy.pid, signal.SIGHUP)
    wait_for(lambda: served_serial(proxy.addr, ctx) == new.serial, what="the new certificate after SIGHUP")


def test_reloader_keeps_old_chain_on_a_bad_pair(pki):
    files = TlsFiles(pki.server.cert, pki.server.key)
    ctx = server_context(files)
    reloader = CertReloader(files, [ctx])
    assert not reloader.changed()
    other = pki.ca.issue("other")
    os.replace(other.cert, pki.server.cert)
    assert reloader.changed()
    assert not reloader.reload() and reloader.failures == 1
    os.replace(other.key, pki.server.key)
    assert reloader.reload() and not reloader.changed()


def test_peer_contexts_mutual_tls(pki):
    """The peer port's building block: both sides present the tier's certificate; a peer with no
    certificate, or one from another CA, is refused."""
    peer = pki.ca.issue("peer", server=True, client=True)
    files = TlsFiles(peer.cert, peer.key, pki.ca.ca_file)
    server_ctx, client_ctx = peer_contexts(files)
    assert server_ctx.verify_mode == ssl.CERT_REQUIRED and client_ctx.verify_mode == ssl.CERT_REQUIRED
    with pytest.raises(ValueError):
        peer_contexts(TlsFiles(pki.server.cert, pki.server.key))

    async def exchange(ctx: ssl.SSLContext) -> bytes:
        async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                writer.write(await reader.readline())
                await writer.drain()
            except (ssl.SSLError, ConnectionError):
                pass
            finally:
                writer.close()

        server = await asyncio.start_server(echo, "127.0.0.1", 0, ssl=server_ctx)
        port = server.sockets[0].getsockname()[1]
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname="localhost")
            writer.write(b"ping\n")
            await writer.drain()
            try:
                return await asyncio.wait_for(reader.readline(), 5)
            except (ssl.SSLError, ConnectionError):
                return b""
            finally:
                writer.close()
        except (ssl.SSLError, ConnectionError):
            return b""
        finally:
            server.close()
            await server.wait_closed()

    assert asyncio.run(exchange(client_ctx)) == b"ping\n"
    bare = ssl.create_default_context(cafile=pki.ca.ca_file)
    bare.check_hostname = False
    assert asyncio.run(exchange(bare)) == b""
    foreign = ssl.create_default_context(cafile=pki.ca.ca_file)
    foreign.check_hostname = False
    foreign.load_cert_chain(pki.foreign_client.cert, pki.foreign_client.key)
    assert asyncio.run(exchange(foreign)) == b""
