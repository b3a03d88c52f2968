"""Clients spread over every proxy of a tier, with a checker that knows each key's history.

Each client owns its keys (only it writes them, one operation at a time: set or delete) and
reads any key through any proxy. A read that started when a key's last acknowledged operation
was number ``a`` and ended when ``b`` operations had been issued may see the state after any
operation in ``a..b``: an older value is a *stale* read; a miss when every operation in that
range was a set is a *lost* key. Every request must be answered (no SERVER_ERROR, no closed
connection) unless a test allows errors.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field


@dataclass
class KeyLog:
    ops: list[bool] = field(default_factory=list)  # True: set (value "<key>:<i>"), False: delete
    acked: int = -1  # index of the last acknowledged op


@dataclass
class Results:
    requests: int = 0
    errors: int = 0
    stale: int = 0
    lost: int = 0
    dropped: int = 0
    examples: list = field(default_factory=list)


class Load:
    def __init__(self, addrs: list[str], clients: int, keys_per_client: int, seed: int = 7) -> None:
        self.addrs, self.clients, self.keys_per_client = addrs, clients, keys_per_client
        self.logs: dict[bytes, KeyLog] = {}
        self.results = Results()
        self.rng = random.Random(seed)
        self.stop = asyncio.Event()
        self.all_keys = [b"load:%d:%d" % (c, k) for c in range(clients) for k in range(keys_per_client)]
        for key in self.all_keys:
            self.logs[key] = KeyLog()

    def fail(self, kind: str, detail: object) -> None:
        setattr(self.results, kind, getattr(self.results, kind) + 1)
        if len(self.results.examples) < 10:
            self.results.examples.append((kind, detail))

    async def client(self, index: int) -> None:
        rng = random.Random(index)
        addr = self.addrs[index % len(self.addrs)]
        host, port = addr.rsplit(":", 1)
        try:
            reader, writer = await asyncio.open_connection(host, int(port))
        except OSError as exc:
            self.fail("dropped", exc)
            return
        mine = [b"load:%d:%d" % (index, k) for k in range(self.keys_per_client)]
        try:
            while not self.stop.is_set():
                if rng.random() < 0.4:
                    await self.write(reader, writer, rng.choice(mine), rng.random() < 0.8)
                else:
                    await self.read(reader, writer, rng.choice(self.all_keys))
                await asyncio.sleep(rng.uniform(0.001, 0.01))
        except (OSError, asyncio.IncompleteReadError) as exc:
            self.fail("dropped", repr(exc))
        finally:
            writer.close()

    async def write(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, key: bytes, is_set: bool) -> None:
        log = self.logs[key]
        i = len(log.ops)
        log.ops.append(is_set)
        if is_set:
            value = b"%s:%d" % (key, i)
            writer.write(b"set %s 0 0 %d\r\n%s\r\n" % (key, len(value), value))
        else:
            writer.write(b"delete %s\r\n" % key)
        line = await reader.readline()
        self.results.requests += 1
        if line in (b"STORED\r\n", b"DELETED\r\n", b"NOT_FOUND\r\n"):
            log.acked = i
        else:
            self.fail("errors", (key, line))

    async def read(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, key: bytes) -> None:
        log = self.logs[key]
        a = log.acked
        writer.write(b"get %s\r\n" % key)
        line = await reader.readline()
        value = None
        if line.startswith(b"VALUE"):
            size = int(line.split()[3])
            value = (await reader.readexactly(size + 2))[:-2]
            line = await reader.readline()
        self.results.requests += 1
        if line != b"END\r\n":
            self.fail("errors", (key, line))
            return
        b = len(log.ops) - 1
        if a < 0:
            return  # never acknowledged: any answer is fine
        if value is None:
            if all(log.ops[a:b + 1]):
                self.fail("lost", (key, a, b))
        else:
            n = int(value.rsplit(b":", 1)[1])
            if n < a:
                self.fail("stale", (key, n, a, b))

    async def run(self) -> None:
        tasks = [asyncio.create_task(self.client(i)) for i in range(self.clients)]
        await self.stop.wait()
        await asyncio.wait(tasks, timeout=15)


async def preload(addrs: list[str], keys: list[bytes], batch: int = 200) -> None:
    """Store KEYS (value = key) through the proxies, in pipelined batches."""
    for start in range(0, len(keys), batch):
        host, port = addrs[(start // batch) % len(addrs)].rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port))
        part = keys[start:start + batch]
        writer.write(b"".join(b"set %s 0 0 %d\r\n%s\r\n" % (k, len(k), k) for k in part))
        for _ in part:
            assert await reader.readline() == b"STORED\r\n"
        writer.close()


async def hit_ratio(addrs: list[str], keys: list[bytes], batch: int = 200) -> float:
    """Read KEYS once each, in batches through rotating proxies: the share answered with the value."""
    hits = 0
    for start in range(0, len(keys), batch):
        host, port = addrs[(start // batch + 1) % len(addrs)].rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port))
        part = keys[start:start + batch]
        writer.write(b"get " + b" ".join(part) + b"\r\n")
        while True:
            line = await reader.readline()
            if line == b"END\r\n":
                break
            assert line.startswith(b"VALUE"), line
            size = int(line.split()[3])
            await reader.readexactly(size + 2)
            hits += 1
        writer.close()
    return hits / len(keys)


def deadline_poll(check, timeout: float, interval: float = 0.05) -> None:
    end = time.monotonic() + timeout
    while not check():
        if time.monotonic() > end:
            raise TimeoutError("condition not reached")
        time.sleep(interval)
