"""A stand-in for the Kubernetes API server's ConfigMap endpoints, enough for a real proxy's
``--config-map`` watch to connect, list, receive an event and reconnect, so its watch metrics are
real series (tests/monitoring/test_ring_prometheus.py). The real API server is tested against in
tests/operator/test_proxy_watch.py; this one needs no control plane.

A TLS server on 127.0.0.1 (certificate from tests/security/certs.py) answers every list with no
ConfigMap and every watch with one BOOKMARK event, then ends the watch as the real server does at
its timeout. It never hands over a config text, so the proxy keeps its file's.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import ssl
import tempfile
import threading
from pathlib import Path

from tests.security.certs import Authority

NAMESPACE = "shop"
LISTING = {"kind": "ConfigMapList", "metadata": {"resourceVersion": "5"}, "items": []}
BOOKMARK = {"type": "BOOKMARK", "object": {"kind": "ConfigMap", "metadata": {"resourceVersion": "6"}}}


class StandInApiServer:
    """Serves until stop(); env() is what a proxy process needs to watch through it."""

    def __init__(self) -> None:
        directory = self.directory = Path(tempfile.mkdtemp(prefix="cacheproxy-apiserver-"))
        ca = Authority(str(directory))
        issued = ca.issue("apiserver")
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(issued.cert, issued.key)
        self.account = directory / "serviceaccount"  # what a pod has mounted
        self.account.mkdir()
        (self.account / "token").write_text("stand-in\n")
        (self.account / "namespace").write_text(f"{NAMESPACE}\n")
        shutil.copy(ca.ca_file, self.account / "ca.crt")
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.watches = 0
        threading.Thread(target=self.accept, daemon=True).start()

    def env(self) -> dict[str, str]:
        return {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(self.port),
                "CACHEPROXY_SERVICEACCOUNT_DIR": str(self.account)}

    def accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return  # stopped
            threading.Thread(target=self.answer, args=(conn,), daemon=True).start()

    def answer(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError), conn:
            conn.settimeout(10)
            with self.context.wrap_socket(conn, server_side=True) as tls:
                head = b""
                while b"\r\n\r\n" not in head:
                    piece = tls.recv(4096)
                    if not piece:
                        return
                    head += piece
                if b"watch=1" in head.split(b" ", 2)[1]:
                    self.watches += 1
                    event = json.dumps(BOOKMARK).encode() + b"\n"
                    tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                b"Transfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n" % (len(event), event))
                else:
                    body = json.dumps(LISTING).encode()
                    tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                                % (len(body), body))

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.server.shutdown(socket.SHUT_RDWR)  # wakes the accept() above
        self.server.close()
        shutil.rmtree(self.directory, ignore_errors=True)
