"""TLS for the client, admin and peer ports: SSLContexts, and certificate rotation without a restart.

Contract:

- :func:`server_context` builds the context a listener is created with: TLS 1.2 at least (1.3
  preferred: OpenSSL picks the highest both sides offer), the tier's certificate chain and key,
  and with a CA file, client certificates required and verified against it (mTLS).
- :class:`CertReloader` keeps those contexts current. A listener's ``ssl=`` is fixed when it is
  created, so rotation reloads the chain into *the same context object*
  (``SSLContext.load_cert_chain``): every handshake after that uses the new certificate, and
  connections already established keep theirs (nothing is dropped). The files are polled (their
  mtime, inode and size, about once a second) and :meth:`CertReloader.reload` can be called on
  SIGHUP. A new chain is first loaded into a scratch context: a half-written file (certificate
  new, key old) is reported and retried, never installed. A changed CA file is *added* to the
  trusted CAs (OpenSSL cannot remove one from a live context): a CA that is taken out of the
  file stays trusted until the process restarts.
- :func:`peer_contexts` gives the server and client contexts for the proxy-to-proxy (peer) port:
  mutual TLS against the tier's CA, a client without a certificate refused.

Nothing here imports the rest of cacheproxy except the metrics counters.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import ssl
from collections.abc import Sequence
from dataclasses import dataclass

log = logging.getLogger(__name__)

POLL_INTERVAL = 1.0


@dataclass(frozen=True)
class TlsFiles:
    """The mounted files a context is built from; ``ca`` set turns on client-certificate checks."""

    cert: str
    key: str
    ca: str | None = None

    def paths(self) -> tuple[str, ...]:
        return (self.cert, self.key) + ((self.ca,) if self.ca else ())


def _base(purpose: ssl.Purpose) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if purpose is ssl.Purpose.CLIENT_AUTH
                         else ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.options |= ssl.OP_NO_COMPRESSION
    return ctx


def server_context(files: TlsFiles, *, verify_clients: bool | None = None) -> ssl.SSLContext:
    """A server-side context for FILES. Client certificates are required and verified against
    ``files.ca`` when it is set (or VERIFY_CLIENTS says so explicitly)."""
    ctx = _base(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(files.cert, files.key)
    verify = bool(files.ca) if verify_clients is None else verify_clients
    if verify:
        if not files.ca:
            raise ValueError("client-certificate verification needs a CA file")
        ctx.load_verify_locations(cafile=files.ca)
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def client_context(files: TlsFiles, *, server_hostname_checked: bool = False) -> ssl.SSLContext:
    """A client-side context presenting the tier's certificate and trusting only its CA."""
    if not files.ca:
        raise ValueError("a client context needs the CA file that signs the servers")
    ctx = _base(ssl.Purpose.SERVER_AUTH)
    ctx.load_cert_chain(files.cert, files.key)
    ctx.load_verify_locations(cafile=files.ca)
    ctx.check_hostname = server_hostname_checked
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def peer_contexts(files: TlsFiles, *, check_hostname: bool = False) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server, client) contexts for the peer port: both sides present the tier's certificate
    and verify the other's against the tier's CA; a peer without a certificate is refused.

    Peers dial each other by pod IP, which certificates rarely name, so the client does not check
    the host name by default: the trust anchor is the tier's own CA. Pass CHECK_HOSTNAME=True
    (and ``server_hostname=`` when connecting) when the certificates name the peers. The tier's
    certificate must allow both usages (extended key usage serverAuth and clientAuth, cert-manager's
    ``server auth`` and ``client auth``): OpenSSL refuses a client certificate without the latter. Give both
    contexts to a :class:`CertReloader` to rotate them with the client port's."""
    if not files.ca:
        raise ValueError("the peer port needs tls_ca: peers authenticate each other (mTLS)")
    return server_context(files, verify_clients=True), client_context(files, server_hostname_checked=check_hostname)


def _stamp(paths: Sequence[str]) -> tuple:
    """What changes when a mounted file is replaced (Kubernetes swaps a symlink: new inode)."""
    out: list[tuple[int, int, int] | None] = []
    for path in paths:
        try:
            st = os.stat(path)
            out.append((st.st_mtime_ns, st.st_ino, st.st_size))
        except OSError:
            out.append(None)
    return tuple(out)


class CertReloader:
    """Reloads FILES into every registered context when the files change."""

    def __init__(self, files: TlsFiles, contexts: Sequence[ssl.SSLContext] = ()) -> None:
        self.files = files
        self.contexts: list[ssl.SSLContext] = list(contexts)
        self.stamp = _stamp(files.paths())
        self.reloads = 0
        self.failures = 0

    def add(self, ctx: ssl.SSLContext) -> ssl.SSLContext:
        self.contexts.append(ctx)
        return ctx

    def changed(self) -> bool:
        return _stamp(self.files.paths()) != self.stamp

    def reload(self) -> bool:
        """Load the current files into every context; False (and the old chain kept) when they
        do not load, e.g. a certificate whose key has not been written yet."""
        stamp = _stamp(self.files.paths())
        files = self.files
        try:
            scratch = _base(ssl.Purpose.CLIENT_AUTH)
            scratch.load_cert_chain(files.cert, files.key)
            if files.ca:
                scratch.load_verify_locations(cafile=files.ca)
        except (OSError, ssl.SSLError, ValueError) as exc:
            self.failures += 1
            log.warning("TLS files %s do not load (%s); keeping the previous certificate", files.cert, exc)
            return False
        for ctx in self.contexts:
            ctx.load_cert_chain(files.cert, files.key)
            if files.ca and ctx.verify_mode == ssl.CERT_REQUIRED:
                ctx.load_verify_locations(cafile=files.ca)
        self.stamp = stamp
        self.reloads += 1
        log.info("TLS certificate reloaded from %s", files.cert)
        return True

    async def watch(self, interval: float = POLL_INTERVAL) -> None:
        """Poll the files forever; reload when they change (a failed load is retried)."""
        while True:
            await asyncio.sleep(interval)
            if self.changed():
                self.reload()

    def on_sighup(self, loop: asyncio.AbstractEventLoop) -> None:
        """Reload on SIGHUP too (when this is the main thread)."""
        with contextlib.suppress(RuntimeError, ValueError, AttributeError):
            loop.add_signal_handler(signal.SIGHUP, self.reload)
