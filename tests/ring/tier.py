"""A tier of real proxy + memcached pairs on loopback, each proxy naming all of them in one
shared config file (as the operator's ConfigMap does); ``--ring-self`` tells each which it is.

A member's name is its proxy's client address (``127.0.0.1:PORT``), what a smart client hashes.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from cacheproxy.ring.ketama import Continuum

from tests.support.procs import Proc, free_port, start_memcached, start_proxy, wait_connectable


@dataclass
class Pair:
    index: int
    memcached: Proc
    port: int
    peer_port: int
    proxy: Proc | None = None
    l2: Proc | None = None  # the member's L2 memcached: its proxy then runs the L1L2 orca

    @property
    def name(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def addr(self) -> str:
        return self.name

    @property
    def admin(self) -> str:
        assert self.proxy is not None
        return self.proxy.extra["admin"]


@dataclass
class Tier:
    config: Path
    pairs: list[Pair] = field(default_factory=list)
    members: list[int] = field(default_factory=list)  # indexes of pairs in the ring now
    generation: int = 1
    extra: dict = field(default_factory=dict)  # more ring: keys
    top: dict = field(default_factory=dict)  # more top-level config keys (chunking, batching...)
    peer_host: str = "127.0.0.1"  # how members name each other's peer ports (a name is resolved)

    @classmethod
    def start(cls, n: int, spare: int = 0, top: dict | None = None, peer_host: str = "127.0.0.1",
              l2: bool = False, **ring_extra: object) -> Tier:
        directory = Path(tempfile.mkdtemp(prefix="ring-tier-"))
        tier = cls(directory / "cacheproxy.yaml", extra=dict(ring_extra), top=dict(top or {}), peer_host=peer_host)
        for i in range(n + spare):
            l2_memcached = start_memcached() if l2 else None
            tier.pairs.append(Pair(i, start_memcached(), free_port(), free_port(), l2=l2_memcached))
        tier.members = list(range(n))
        tier.write()
        for i in range(n):
            tier.start_proxy(i)
        return tier

    def member_entry(self, i: int) -> dict:
        p = self.pairs[i]
        return {"name": p.name, "peer": f"{self.peer_host}:{p.peer_port}"}

    def write(self, previous: list[int] | None = None, phase: str = "serve", text: str | None = None) -> None:
        """Rewrite the shared config as the kubelet updates a ConfigMap: an atomic rename."""
        if text is None:
            ring = {"generation": self.generation, "members": [self.member_entry(i) for i in self.members],
                    "previous": [self.member_entry(i) for i in previous or []], "phase": phase,
                    **self.extra}
            text = json.dumps({"ring": ring, "backend_timeout": 1.0, "log_level": "info", **self.top})
        tmp = self.config.with_suffix(".tmp")
        tmp.write_text(text)
        os.replace(tmp, self.config)

    def start_proxy(self, i: int, args: tuple[str, ...] = (), env: dict[str, str] | None = None) -> Proc:
        p = self.pairs[i]
        # On loopback every proxy needs its own peer port (in a pod they share one number).
        cmd = ["--config", str(self.config), "--ring-self", p.name, "--ring-peer-listen",
               f"127.0.0.1:{p.peer_port}", *(("--l2", p.l2.addr) if p.l2 is not None else ()), *args]
        p.proxy = start_proxy(p.memcached.addr, args=cmd, port=p.port, env=env)
        wait_connectable(f"127.0.0.1:{p.peer_port}", p.proxy.popen)
        return p.proxy

    def ring(self) -> Continuum:
        return Continuum([self.pairs[i].name for i in self.members])

    def owner(self, key: bytes) -> int:
        return self.members[self.ring().owner(key)]

    def ring_json(self, i: int) -> dict:
        with urllib.request.urlopen(f"http://{self.pairs[i].admin}/ring", timeout=5) as r:
            return json.loads(r.read())

    def metric(self, i: int, name: str) -> float:
        """Member I's metric NAME (a name, or a name with labels), summed over its lines."""
        with urllib.request.urlopen(f"http://{self.pairs[i].admin}/metrics", timeout=5) as response:
            text = response.read().decode()
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))

    def reload_all(self) -> None:
        for i in self.members:
            proxy = self.pairs[i].proxy
            if proxy is not None and proxy.popen.poll() is None:
                os.kill(proxy.pid, signal.SIGHUP)

    def stop(self) -> None:
        for p in self.pairs:
            if p.proxy is not None:
                with_cont(p.proxy)
                p.proxy.stop()
            p.memcached.stop()
            if p.l2 is not None:
                p.l2.stop()
        shutil.rmtree(self.config.parent, ignore_errors=True)


def with_cont(proc: Proc) -> None:
    """A SIGSTOPped process cannot handle SIGTERM: continue it first."""
    if proc.popen.poll() is None:
        os.kill(proc.pid, signal.SIGCONT)
