"""The security wiring of one process: TLS listeners, the admin port's TLS, rotation, SIGHUP.

- The client port (``listen``) speaks TLS when ``tls_cert``/``tls_key`` are set (mTLS with
  ``tls_ca``); ``plain_listen`` adds a plaintext port beside it, served the same way otherwise.
- ``admin_tls_listen`` serves ``/metrics`` (and the health endpoints) over TLS with the same
  certificate, server-authenticated only (Prometheus needs no client certificate); the plain
  ``admin`` port then keeps only ``/healthz`` and ``/readyz`` for the kubelet.
- The ring's peer port speaks mutual TLS when ``ring.peer_tls_cert``/``_key``/``_ca`` are set:
  :attr:`Security.peer_server_context` for its listener (a client certificate from the tier's CA
  required) and :attr:`Security.peer_client_context` for the connections to the other members.
- :class:`~cacheproxy.security.tls.CertReloader` reloads every context of the process when the
  files change (polled each second) or on SIGHUP, which also reloads the auth file: one reloader
  for the client and admin ports' files and, when they are other files, one for the peer files.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable

from aiohttp import web

from ..config import Config
from ..metrics.admin import build_app
from ..security.authfile import Credentials
from ..security.tls import POLL_INTERVAL, CertReloader, TlsFiles, peer_contexts, server_context
from ..server.connection import ServerContext, SessionFactory
from .listener import ListenError, Listening, listen


class Security:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.reloaders: list[CertReloader] = []
        self.client_context: ssl.SSLContext | None = None
        self.admin_context: ssl.SSLContext | None = None
        self.peer_server_context: ssl.SSLContext | None = None
        self.peer_client_context: ssl.SSLContext | None = None
        if config.tls_cert and config.tls_key:
            files = TlsFiles(config.tls_cert, config.tls_key, config.tls_ca)
            reloader = self._reloader(files)
            self.client_context = reloader.add(server_context(files))
            if config.admin_tls_listen:
                self.admin_context = reloader.add(server_context(files, verify_clients=False))
        ring = config.ring
        if ring is not None and ring.peer_tls_cert and ring.peer_tls_key and ring.peer_tls_ca:
            files = TlsFiles(ring.peer_tls_cert, ring.peer_tls_key, ring.peer_tls_ca)
            reloader = self._reloader(files)
            server, client = peer_contexts(files)
            self.peer_server_context, self.peer_client_context = reloader.add(server), reloader.add(client)

    def _reloader(self, files: TlsFiles) -> CertReloader:
        """The reloader of FILES (one per set of files, so each is polled and loaded once)."""
        for reloader in self.reloaders:
            if reloader.files == files:
                return reloader
        self.reloaders.append(CertReloader(files))
        return self.reloaders[-1]

    async def client_listeners(self, context: ServerContext, sessions: SessionFactory, *,
                               reuse_port: bool) -> list[Listening]:
        """The client port (TLS when configured), and the plaintext port beside it if any."""
        cfg = self.config
        servers = [await listen(context, cfg.address("listen"), sessions=sessions, reuse_port=reuse_port,
                                ssl_context=self.client_context, handshake_timeout=cfg.tls_handshake_timeout)]
        if cfg.plain_listen:
            servers.append(await listen(context, cfg.address("plain_listen"), sessions=sessions,
                                        reuse_port=reuse_port))
        return servers

    async def admin_sites(self, snapshot: Callable[[], dict],
                          ready: Callable[[], tuple[bool, str]]) -> list[web.AppRunner]:
        """The admin port; with admin TLS, /metrics moves to the TLS port."""
        runners = []
        a = self.config.address("admin")
        plain = await _site(build_app(snapshot, ready, metrics=self.admin_context is None), a.host, a.port)
        runners.append(plain)
        if self.admin_context is not None and self.config.admin_tls_listen:
            t = self.config.address("admin_tls_listen")
            runners.append(await _site(build_app(snapshot, ready), t.host, t.port, self.admin_context))
        return runners

    def start(self, loop: asyncio.AbstractEventLoop, credentials: Credentials | None) -> list[asyncio.Task]:
        """Rotation: poll the files (SIGHUP calls :meth:`reload`; app.py owns the one handler)."""
        if not self.reloaders and credentials is None:
            return []
        return [loop.create_task(self._watch(credentials))]

    def reload(self, credentials: Credentials | None) -> None:
        """Reload the certificates and the auth file now."""
        for reloader in self.reloaders:
            reloader.reload()
        if credentials is not None:
            credentials.reload()

    async def _watch(self, credentials: Credentials | None) -> None:
        while True:
            await asyncio.sleep(POLL_INTERVAL)
            for reloader in self.reloaders:
                if reloader.changed():
                    reloader.reload()
            if credentials is not None and credentials.changed():
                credentials.reload()


async def _site(app: web.Application, host: str, port: int, ctx: ssl.SSLContext | None = None) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port, reuse_address=True, ssl_context=ctx).start()
    except OSError as exc:
        await runner.cleanup()
        raise ListenError.of(f"{host}:{port} (admin)", exc) from exc
    return runner
