"""The ConfigMap watch against answers a real API server would not give: a TLS server standing in for
it sends an event line far beyond the limit, a line that is not JSON, a chunked stream cut in odd
places, and a 410 on the watch itself. The watch must log, count and reconnect (never crash, hang or
hold the oversized line), then deliver the next good event. The real API server's behaviour
(changes, restarts, 410 after a restart, RBAC) is tested in tests/operator/test_proxy_watch.py."""

from __future__ import annotations

import asyncio
import json
import ssl
import tracemalloc
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from cacheproxy import kubewatch
from cacheproxy.kubewatch import ConfigMapWatch, Target
from cacheproxy.metrics.stats import STATS

from tests.security.certs import Authority

Answer = Callable[[asyncio.StreamWriter, str], Awaitable[None]]


def listing(text: str, version: str = "10") -> bytes:
    item = {"metadata": {"name": "cache-config", "resourceVersion": version}, "data": {"config.yaml": text}}
    return json.dumps({"kind": "ConfigMapList", "metadata": {"resourceVersion": version}, "items": [item]}).encode()


def modified(text: str, version: str) -> bytes:
    obj = {"metadata": {"name": "cache-config", "resourceVersion": version}, "data": {"config.yaml": text}}
    return json.dumps({"type": "MODIFIED", "object": obj}).encode() + b"\n"


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


async def serve_fake_apiserver(tmp_path: Path, watches: list[Answer]) -> tuple[asyncio.Server, Target, list[str]]:
    """A TLS server answering every list with one ConfigMap and the Nth watch with WATCHES[N]."""
    ca = Authority(str(tmp_path))
    issued = ca.issue("apiserver")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(issued.cert, issued.key)
    (tmp_path / "token").write_text("t0\n")
    paths: list[str] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            path = head.split(b" ")[1].decode()
            paths.append(path)
            assert b"Authorization: Bearer t0\r\n" in head
            if "watch=1" not in path:
                body = listing("generation: 1\n")
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            else:
                writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                await watches[min(sum("watch=1" in p for p in paths), len(watches)) - 1](writer, path)
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass  # the client left, or the test ended
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)
    port = server.sockets[0].getsockname()[1]
    target = Target(host="127.0.0.1", port=port, namespace="ns", name="cache-config", key="config.yaml",
                    token_file=str(tmp_path / "token"), ca_file=ca.ca_file)
    return server, target, paths


async def huge_line(writer: asyncio.StreamWriter, path: str) -> None:
    piece = b"x" * (1 << 20)
    for _ in range(3 * kubewatch.MAX_EVENT_BYTES // len(piece)):  # three times the limit, no newline
        writer.write(chunk(piece))
        await writer.drain()


async def not_json(writer: asyncio.StreamWriter, path: str) -> None:
    writer.write(chunk(b'{"type": "MODIFIED", "object": \n'))
    await writer.drain()
    await asyncio.sleep(3600)  # the watch must leave on its own


async def gone(writer: asyncio.StreamWriter, path: str) -> None:
    status = {"kind": "Status", "code": 410, "reason": "Expired", "message": "too old resource version"}
    writer.write(chunk(json.dumps({"type": "ERROR", "object": status}).encode() + b"\n") + b"0\r\n\r\n")


async def good_events(writer: asyncio.StreamWriter, path: str) -> None:
    assert "resourceVersion=10" in path, path
    event = modified("generation: 2\n", "11") + modified("generation: 3\n", "12")
    for i in range(0, len(event), 7):  # cut in odd places: inside lines and chunk boundaries
        writer.write(chunk(event[i:i + 7]))
        await writer.drain()
    await asyncio.sleep(3600)


@pytest.mark.asyncio
async def test_oversized_and_malformed_streams_reconnect_then_deliver(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kubewatch, "BACKOFF_MIN", 0.01)
    server, target, paths = await serve_fake_apiserver(tmp_path, [huge_line, not_json, gone, good_events])
    delivered: list[tuple[str | None, str]] = []
    watch = ConfigMapWatch(target, lambda text, why: delivered.append((text, why)))
    before = dict(STATS.config_watch_reconnects)
    tracemalloc.start()
    task = asyncio.get_running_loop().create_task(watch.run())
    try:
        async with asyncio.timeout(30):
            while len(delivered) < 4:  # listed, relisted after the 410, then two events
                assert not task.done(), task
                await asyncio.sleep(0.01)
            while not watch.up:
                await asyncio.sleep(0.01)
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        server.close()
    assert [text for text, _ in delivered] == ["generation: 1\n", "generation: 1\n", "generation: 2\n",
                                               "generation: 3\n"]
    assert "modified, resourceVersion 12" in delivered[-1][1]
    counted = {k: v - before.get(k, 0) for k, v in STATS.config_watch_reconnects.items()}
    assert counted["too_large"] == 1 and counted["malformed"] == 1 and counted["gone"] == 1, counted
    # the oversized line was dropped once it passed the limit: never held whole (24 MiB were sent)
    assert peak < 3 * kubewatch.MAX_EVENT_BYTES, peak
    assert sum("watch=1" not in p for p in paths) == 2  # listed at start and after the 410
    assert watch.resource_version == "12"


@pytest.mark.asyncio
async def test_a_watch_silent_past_its_timeout_is_abandoned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A connection that dies without a FIN: nothing arrives, the watch gives up and resumes."""
    monkeypatch.setattr(kubewatch, "WATCH_SECONDS", (0, 0))
    monkeypatch.setattr(kubewatch, "SILENCE_SLACK", 0.3)

    async def silent(writer: asyncio.StreamWriter, path: str) -> None:
        await asyncio.sleep(3600)

    server, target, _ = await serve_fake_apiserver(tmp_path, [silent, good_events])
    delivered: list[str | None] = []
    watch = ConfigMapWatch(target, lambda text, why: delivered.append(text))
    before = STATS.config_watch_reconnects.get("timeout", 0)
    task = asyncio.get_running_loop().create_task(watch.run())
    try:
        async with asyncio.timeout(20):
            while len(delivered) < 3:
                await asyncio.sleep(0.01)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        server.close()
    assert STATS.config_watch_reconnects["timeout"] == before + 1
    assert delivered == ["generation: 1\n", "generation: 2\n", "generation: 3\n"]
