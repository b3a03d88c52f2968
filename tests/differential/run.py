"""Run the differential corpus from the command line and print every mismatch.

    python -m tests.differential.run                 # A = memcached, B = proxy (+ its memcached)
    python -m tests.differential.run --b proxy-unix  # the proxy reaching memcached over a unix socket
    python -m tests.differential.run --b memcached   # A vs A: validates the harness and the corpus
    python -m tests.differential.run -k mg_ --show   # only scripts whose name contains mg_, print A

Besides A/B differences, target A's transcript is checked for script bugs: a timeout, or a
sentinel that did not come back as ``MN`` (the reply shapes of the script are then wrong).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass

from tests.differential.harness import (
    CLOSED,
    TIMEOUT,
    Mismatch,
    Script,
    Transcript,
    compare,
    reset_memcached,
    run_script,
)
from tests.differential.layouts import start_ring
from tests.differential.scripts import SCRIPTS
from tests.support.procs import Proc, start_memcached, start_proxy


@dataclass
class Target:
    """Where scripts are sent (``addr``) and the memcached behind it (reset between scripts)."""

    addr: str
    backend: str
    procs: list[Proc]
    sock_dir: str | None = None

    def alive(self) -> bool:
        return all(p.popen.poll() is None for p in self.procs)

    def stop(self) -> None:
        for p in self.procs:
            p.stop()
        if self.sock_dir:
            shutil.rmtree(self.sock_dir, ignore_errors=True)


def start_target(kind: str) -> Target:
    """``memcached`` (direct), ``proxy`` (proxy → memcached over TCP, a connection per client),
    ``proxy-unix`` (proxy → memcached over a unix socket with the batched pool, as in pods) or
    ``ring`` (a proxy that forwards every key to the members of a ring; layouts.py)."""
    if kind == "ring":
        ring = start_ring()
        assert ring.tier is not None
        return Target(ring.addr, ring.levels["l1"], ring.procs, str(ring.tier.config.parent))
    sock_dir = None
    if kind == "proxy-unix":
        sock_dir = tempfile.mkdtemp(prefix="cacheproxy-diff-")
        mc = start_memcached(unix_path=os.path.join(sock_dir, "l1.sock"))
    else:
        mc = start_memcached()
    if kind == "memcached":
        return Target(mc.addr, mc.addr, [mc])
    try:
        # Over TCP, Rend's classic layout (a backend connection per client); over a unix socket,
        # the shipped one (a shared, batched pool), as in pods.
        proxy = start_proxy(mc.addr, args=["--no-batching"] if kind == "proxy" else [])
    except Exception:
        mc.stop()
        raise
    return Target(proxy.addr, mc.addr, [proxy, mc], sock_dir)


def self_check(script: Script, a: Transcript) -> list[str]:
    """Problems with the script itself, judged from memcached's (target A's) transcript."""
    problems = [f"{script.name}: shape {e}" for e in a.shape_errors]
    for i, reply in enumerate(a.replies):
        if reply.endswith(TIMEOUT):
            problems.append(f"{script.name}: step {i} timed out on memcached (wrong reply shape?)")
    sentinels = [r for r in a.replies if r.startswith(b"sentinel:")]
    for s in sentinels:
        if s not in (b"sentinel:MN\r\n", b"sentinel:" + CLOSED):
            problems.append(f"{script.name}: sentinel answered {s!r} (stray reply bytes before MN?)")
    return problems


def play(script: Script, a: Target, b: Target) -> tuple[Transcript, Transcript, list[Mismatch]]:
    reset_memcached(a.backend)
    reset_memcached(b.backend)
    ta = run_script(script, a.addr)
    tb = run_script(script, b.addr)
    return ta, tb, compare(script, ta, tb)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--b", choices=("proxy", "proxy-unix", "ring", "memcached"), default="proxy")
    ap.add_argument("-k", default="", help="only scripts whose name contains this")
    ap.add_argument("--show", action="store_true", help="print target A's transcript")
    args = ap.parse_args(argv)
    chosen = [s for s in SCRIPTS if args.k in s.name]
    failed = problems = 0
    a = start_target("memcached")
    b = None
    try:
        b = start_target(args.b)
        for script in chosen:
            ta, _, mismatches = play(script, a, b)
            issues = self_check(script, ta)
            for issue in issues:
                print("SCRIPT PROBLEM", issue)
            problems += bool(issues)
            if args.show:
                print(f"== {script.name}")
                for r in ta.replies:
                    print("  ", r[:400])
            if mismatches:
                failed += 1
                print(f"MISMATCH {script.name}")
                for m in mismatches:
                    print("  ", str(m).replace("\n", "\n   "))
            if not b.alive():
                print(f"target B died after {script.name}; restarting it")
                b.stop()
                b = start_target(args.b)
    finally:
        if b is not None:
            b.stop()
        a.stop()
    print(f"{len(chosen)} scripts, {len(chosen) - failed} identical, {failed} mismatched, "
          f"{problems} with script problems (B = {args.b})")
    return 1 if failed or problems else 0


if __name__ == "__main__":
    sys.exit(main())
