"""Watches one ConfigMap through the Kubernetes API and hands each new text of one key to a callback.

A mounted ConfigMap reaches a pod's files only at the kubelet's next sync (up to about a minute);
the API server pushes a change to a watch within milliseconds. The contract:

- Where: ``KUBERNETES_SERVICE_HOST`` / ``KUBERNETES_SERVICE_PORT`` (set in every pod), and the pod's
  service account files ``token``, ``ca.crt`` and ``namespace`` in
  ``/var/run/secrets/kubernetes.io/serviceaccount`` (``CACHEPROXY_SERVICEACCOUNT_DIR`` moves it).
  The token and the CA are read again at every (re)connect: bound tokens rotate.
- What: ``GET /api/v1/namespaces/NS/configmaps?fieldSelector=metadata.name=NAME`` (a list, for the
  current content and its resourceVersion), then the same with ``watch=1&resourceVersion=RV``. Only
  get/list/watch on that one ConfigMap are needed (a Role with ``resourceNames: [NAME]``).
- Each listed, ADDED or MODIFIED object's ``data[KEY]`` goes to ``deliver(text, why)``; a ConfigMap
  without the key delivers ``None``. A deleted or missing ConfigMap is logged only: the caller keeps
  its running config.
- Robust: a closed or failed stream is resumed from the last resourceVersion seen, after a bounded,
  jittered back-off (0.5 s doubling to 30 s; reset once a stream stayed up 30 s); 410 Gone relists.
  The server ends each watch after a few minutes and the client gives up on a stream silent for
  longer than that, so a dead connection is noticed. Nothing the server sends is held beyond
  ``MAX_EVENT_BYTES`` per event line or ``MAX_HEADER_BYTES`` of headers: a larger or malformed answer
  is logged, counted and reconnected, never a crash or a hang.

Counters: ``config_watch_events{type}``, ``config_watch_reconnects{reason}``, ``config_watch_up``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import socket
import ssl
import time
import urllib.parse
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass

from .metrics.stats import STATS

log = logging.getLogger("cacheproxy.kubewatch")

SERVICEACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
SERVICEACCOUNT_DIR_ENV = "CACHEPROXY_SERVICEACCOUNT_DIR"
MAX_EVENT_BYTES = 8 << 20  # a ConfigMap holds at most 1 MiB; JSON escaping can grow it several times
MAX_HEADER_BYTES = 64 << 10
CONNECT_TIMEOUT = 10.0
BACKOFF_MIN, BACKOFF_MAX, STABLE_AFTER = 0.5, 30.0, 30.0
WATCH_SECONDS = (240, 360)  # the server ends each watch after a random time in this range
SILENCE_SLACK = 30.0  # a stream silent this long past its server timeout is dead

EVENT_TYPES = frozenset({"ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"})
Deliver = Callable[[str | None, str], None]  # (the key's text or None, why: for the log)


class WatchError(Exception):
    """The stream failed; REASON names the reconnect in ``config_watch_reconnects``."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class Gone(WatchError):
    """410: the resourceVersion is too old to resume from; relist."""

    def __init__(self, message: str) -> None:
        super().__init__("gone", message)


@dataclass(frozen=True)
class Target:
    """Which ConfigMap key, on which API server, with which credentials."""

    host: str
    port: int
    namespace: str
    name: str
    key: str
    token_file: str
    ca_file: str

    @classmethod
    def from_environment(cls, config_map: str, key: str, env: Mapping[str, str] = os.environ) -> Target:
        """CONFIG_MAP is [NAMESPACE/]NAME (default namespace: the pod's own). ValueError names what is
        missing."""
        account = env.get(SERVICEACCOUNT_DIR_ENV) or SERVICEACCOUNT_DIR
        host, port = env.get("KUBERNETES_SERVICE_HOST"), env.get("KUBERNETES_SERVICE_PORT")
        if not host or not port or not port.isdigit():
            raise ValueError("--config-map needs KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT "
                             "(set in every pod)")
        namespace, _, name = config_map.rpartition("/")
        if not namespace:
            try:
                with open(os.path.join(account, "namespace")) as f:
                    namespace = f.read().strip()
            except OSError as exc:
                raise ValueError(f"--config-map {name}: no namespace given and none readable: {exc}") from None
        return cls(host=host.strip("[]"), port=int(port), namespace=namespace, name=name, key=key,
                   token_file=os.path.join(account, "token"), ca_file=os.path.join(account, "ca.crt"))

    def path(self, **query: str) -> str:
        selector = urllib.parse.urlencode({"fieldSelector": f"metadata.name={self.name}", **query})
        return f"/api/v1/namespaces/{self.namespace}/configmaps?{selector}"

    def describe(self) -> str:
        return f"ConfigMap {self.namespace}/{self.name} key {self.key}"


class Response:
    """One HTTP/1.1 answer: status, headers, and its body as bounded lines."""

    def __init__(self, reader: asyncio.StreamReader, status: int, headers: dict[str, str]) -> None:
        self.reader = reader
        self.status = status
        self.headers = headers

    async def body(self, limit: int = MAX_EVENT_BYTES) -> bytes:
        out = bytearray()
        async for piece in self.pieces():
            out += piece
            if len(out) > limit:
                raise WatchError("too_large", f"answer larger than {limit} bytes")
        return bytes(out)

    async def pieces(self) -> AsyncIterator[bytes]:
        """The body as it arrives: de-chunked, or up to Content-Length, or up to the close."""
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            while True:
                size_line = await self.reader.readuntil(b"\n")
                try:
                    size = int(size_line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    raise WatchError("malformed", f"bad chunk size {size_line[:40]!r}") from None
                if size == 0:
                    return
                async for piece in self._exactly(size, "a chunk"):
                    yield piece
                if await self.reader.readexactly(2) != b"\r\n":
                    raise WatchError("malformed", "chunk not followed by CRLF")
        elif "content-length" in self.headers:
            async for piece in self._exactly(int(self.headers["content-length"]), "the body"):
                yield piece
        else:
            while piece := await self.reader.read(1 << 16):
                yield piece

    async def _exactly(self, size: int, what: str) -> AsyncIterator[bytes]:
        """SIZE bytes of the body in pieces as they arrive; the connection ending first is an error."""
        while size > 0:
            piece = await self.reader.read(min(size, 1 << 16))
            if not piece:
                raise WatchError("closed", f"connection closed inside {what}")
            size -= len(piece)
            yield piece

    async def lines(self, limit: int = MAX_EVENT_BYTES) -> AsyncIterator[bytes]:
        """Newline-delimited lines of the body (a watch's events), none longer than LIMIT."""
        buffer = bytearray()  # never holds a newline between pieces
        async for piece in self.pieces():
            scan = len(buffer)  # only the new bytes are searched: a long line costs linear time
            buffer += piece
            start = 0
            while (end := buffer.find(b"\n", scan)) >= 0:
                if end > start:
                    yield bytes(buffer[start:end])
                start = scan = end + 1
            del buffer[:start]
            if len(buffer) > limit:
                raise WatchError("too_large", f"an event line longer than {limit} bytes")
        if buffer.strip():
            yield bytes(buffer)


def _ssl_context(ca_file: str) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


async def request(target: Target, path: str) -> tuple[asyncio.StreamWriter, Response]:
    """GET PATH with the current token, over a fresh TLS connection; the caller closes the writer."""
    try:
        with open(target.token_file) as f:
            token = f.read().strip()
        context = _ssl_context(target.ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise WatchError("credentials", f"service account files: {exc}") from None
    async with asyncio.timeout(CONNECT_TIMEOUT):
        reader, writer = await asyncio.open_connection(
            target.host, target.port, ssl=context, server_hostname=target.host, limit=MAX_HEADER_BYTES)
        try:
            sock = writer.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            host = f"[{target.host}]" if ":" in target.host else target.host
            writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}:{target.port}\r\nAuthorization: Bearer {token}\r\n"
                         "Accept: application/json\r\nUser-Agent: cacheproxy\r\n\r\n".encode())
            await writer.drain()
            status_line = await reader.readuntil(b"\n")
            parts = status_line.split(None, 2)
            if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
                raise WatchError("malformed", f"bad status line {status_line[:80]!r}")
            headers: dict[str, str] = {}
            size = len(status_line)
            while (line := await reader.readuntil(b"\n")) not in (b"\r\n", b"\n"):
                size += len(line)
                if size > MAX_HEADER_BYTES:
                    raise WatchError("too_large", f"headers longer than {MAX_HEADER_BYTES} bytes")
                name, _, value = line.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
        except BaseException:
            writer.close()
            raise
    return writer, Response(reader, int(parts[1]), headers)


def _status_error(status: int, body: bytes) -> WatchError:
    message = body[:300].decode("utf-8", "replace")
    with contextlib.suppress(ValueError, AttributeError):
        message = json.loads(body).get("message", message)
    if status == 410:
        return Gone(message)
    reason = {401: "unauthorized", 403: "forbidden", 404: "not_found"}.get(status, "http_error")
    return WatchError(reason, f"HTTP {status}: {message}")


class ConfigMapWatch:
    """Lists, then watches, TARGET for ever (until cancelled), handing each text to DELIVER."""

    def __init__(self, target: Target, deliver: Deliver) -> None:
        self.target = target
        self.deliver = deliver
        self.resource_version: str | None = None
        self.up = False  # a watch stream is open and has reached the current state

    async def run(self) -> None:
        backoff, last_reason = BACKOFF_MIN, ""
        while True:
            started = time.monotonic()
            try:
                if self.resource_version is None:
                    await self.list()
                await self.watch()
                reason = "closed"  # the server ended the watch (its timeout)
            except Gone as exc:
                log.info("%s: %s; listing again", self.target.describe(), exc)
                self.resource_version, reason = None, exc.reason
            except (WatchError, OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                    ValueError) as exc:
                reason = exc.reason if isinstance(exc, WatchError) else _reason_of(exc)
                log.warning("%s: watch %s: %s", self.target.describe(), reason, str(exc) or type(exc).__name__)
            finally:
                self._set_up(False)
            STATS.config_watch_reconnects[reason] += 1
            if time.monotonic() - started >= STABLE_AFTER:
                backoff = BACKOFF_MIN
            if (reason == "closed" and time.monotonic() - started >= STABLE_AFTER) or (
                    reason == "gone" and last_reason != "gone"):
                delay = 0.0  # a watch that ran its course, or a first relist: at once
            else:
                delay = backoff * random.uniform(0.5, 1.0)
                backoff = min(backoff * 2, BACKOFF_MAX)
                log.info("%s: watching again in %.1fs", self.target.describe(), delay)
            last_reason = reason
            await asyncio.sleep(delay)

    def _set_up(self, up: bool) -> None:
        self.up = up
        STATS.config_watch_up = int(up)

    async def list(self) -> None:
        writer, answer = await request(self.target, self.target.path())
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                body = await answer.body()
        finally:
            writer.close()
        if answer.status != 200:
            raise _status_error(answer.status, body)
        listing = json.loads(body)
        version = (listing.get("metadata") or {}).get("resourceVersion")
        if not isinstance(version, str) or not version:
            raise WatchError("malformed", "a list without a resourceVersion")
        items = listing.get("items") or []
        if items:
            self.offer(items[0], "listed")
        else:
            log.warning("%s: not found; the running config stays until it appears", self.target.describe())
        self.resource_version = version

    async def watch(self) -> None:
        """One watch stream from self.resource_version, until the server ends it."""
        seconds = random.randint(*WATCH_SECONDS)
        path = self.target.path(watch="1", resourceVersion=self.resource_version or "",
                                allowWatchBookmarks="true", timeoutSeconds=str(seconds))
        writer, answer = await request(self.target, path)
        try:
            if answer.status != 200:
                async with asyncio.timeout(CONNECT_TIMEOUT):
                    body = await answer.body()
                raise _status_error(answer.status, body)
            self._set_up(True)
            lines = answer.lines()
            while True:
                async with asyncio.timeout(seconds + SILENCE_SLACK):
                    line = await anext(lines, None)
                if line is None:
                    return
                self.event(line)
        finally:
            writer.close()

    def event(self, line: bytes) -> None:
        try:
            event = json.loads(line)
            kind, obj = event["type"], event["object"]
            if not isinstance(kind, str) or not isinstance(obj, dict):
                raise TypeError("type or object of the wrong kind")
        except (ValueError, KeyError, TypeError) as exc:
            STATS.config_watch_events["malformed"] += 1
            raise WatchError("malformed", f"unreadable event ({exc}): {line[:80]!r}") from None
        STATS.config_watch_events[kind.lower() if kind in EVENT_TYPES else "other"] += 1
        if kind == "ERROR":
            code = obj.get("code")
            raise _status_error(code if isinstance(code, int) else 500, json.dumps(obj).encode())
        version = (obj.get("metadata") or {}).get("resourceVersion")
        if isinstance(version, str) and version:
            self.resource_version = version
        if kind in ("ADDED", "MODIFIED"):
            self.offer(obj, kind.lower())
        elif kind == "DELETED":
            log.warning("%s: deleted; the running config stays", self.target.describe())

    def offer(self, obj: dict, how: str) -> None:
        meta = obj.get("metadata") or {}
        if meta.get("name") != self.target.name:
            return  # not ours (the field selector should make this impossible)
        data = obj.get("data") or {}
        text = data.get(self.target.key)
        why = f"{self.target.describe()} {how}, resourceVersion {meta.get('resourceVersion')}"
        self.deliver(text if isinstance(text, str) else None, why)


def _reason_of(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, ssl.SSLError | ssl.CertificateError):
        return "tls"
    if isinstance(exc, asyncio.IncompleteReadError | ConnectionError):
        return "closed"
    if isinstance(exc, asyncio.LimitOverrunError):
        return "too_large"
    if isinstance(exc, ValueError | UnicodeDecodeError):
        return "malformed"
    return "network"
