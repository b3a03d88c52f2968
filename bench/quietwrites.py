"""A flood of pipelined quiet binary writes, as python-binary-memcached's ``set_multi`` sends it:
N SetQ frames and one Noop in a single burst, timed until the Noop's answer arrives.

    .venv/bin/python bench/quietwrites.py            # 32,767 keys, 3 interleaved runs per target
    .venv/bin/python bench/quietwrites.py --keys 5000 --runs 5

Targets, each in front of its own fresh memcached(s) on 127.0.0.1: ``direct`` (memcached itself),
``l1only`` (the proxy), ``l1l2`` (the proxy, L1 + an extstore L2), both in the default (batched)
layout or, with ``--classic``, with a backend connection per client. Runs are interleaved (direct,
l1only, l1l2, direct, ...) so that a noisy neighbour hurts all targets alike; the table shows the
median of each target's runs, and the ratio of L1L2 to L1Only. A run that does not get its Noop
answer within --timeout seconds is reported as a failure, not as a time.
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import statistics
import struct
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.procs import Proc, start_memcached, start_proxy

HEADER = struct.Struct(">BBHBBHIIQ")  # magic, opcode, key len, extras len, type, vbucket, body, opaque, cas
SETQ, NOOP = 0x11, 0x0A


def flood(keys: int, value_size: int) -> bytes:
    """KEYS SetQ frames (flags 0, exptime 0) and a Noop, as one buffer."""
    value = b"v" * value_size
    extras = struct.pack(">II", 0, 0)
    frames = []
    for i in range(keys):
        key = b"quiet:%06d" % i
        body = len(extras) + len(key) + len(value)
        frames.append(HEADER.pack(0x80, SETQ, len(key), len(extras), 0, 0, body, i, 0) + extras + key + value)
    frames.append(HEADER.pack(0x80, NOOP, 0, 0, 0, 0, 0, keys, 0))
    return b"".join(frames)


def run_once(addr: str, payload: bytes, timeout: float) -> float | None:
    """Seconds from the first byte sent to the Noop's answer; None on a timeout or an error answer."""
    host, port = addr.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.settimeout(timeout)
    sender = threading.Thread(target=_send, args=(sock, payload), daemon=True)
    started = time.perf_counter()
    sender.start()
    buf = b""
    try:
        while True:
            while len(buf) >= HEADER.size:
                _magic, opcode, _k, _e, _t, status, body, _o, _c = HEADER.unpack_from(buf)
                if len(buf) < HEADER.size + body:
                    break
                buf = buf[HEADER.size + body:]
                if opcode == NOOP:
                    return time.perf_counter() - started
                if status != 0:
                    return None  # a quiet write failed (quiet commands answer only failures)
            chunk = sock.recv(1 << 16)
            if not chunk:
                return None
            buf += chunk
    except TimeoutError:
        return None
    finally:
        sock.close()
        sender.join(5)


def _send(sock: socket.socket, payload: bytes) -> None:
    with contextlib.suppress(OSError):
        sock.sendall(payload)


def start_targets(workdir: str, classic: bool) -> tuple[dict[str, str], list[Proc]]:
    procs: list[Proc] = []
    direct = start_memcached(memory_mb=256)
    l1 = start_memcached(memory_mb=256)
    l1b = start_memcached(memory_mb=256)
    l2 = start_memcached(memory_mb=256, args=["-o", f"ext_path={workdir}/extstore:256m"])
    procs += [direct, l1, l1b, l2]
    args = ["--no-batching"] if classic else []
    only = start_proxy(l1.addr, args=args)
    both = start_proxy(l1b.addr, l2=l2.addr, args=args)
    procs += [only, both]
    return {"direct": direct.addr, "l1only": only.addr, "l1l2": both.addr}, procs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keys", type=int, default=32767)
    ap.add_argument("--value-size", type=int, default=32)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=60.0)
    ap.add_argument("--classic", action="store_true",
                    help="the proxies with --no-batching (a backend connection per client), not the default pool")
    args = ap.parse_args(argv)
    payload = flood(args.keys, args.value_size)
    with tempfile.TemporaryDirectory(prefix="quietwrites-") as workdir:
        targets, procs = start_targets(workdir, args.classic)
        try:
            times: dict[str, list[float | None]] = {name: [] for name in targets}
            for _ in range(args.runs):
                for name, addr in targets.items():
                    times[name].append(run_once(addr, payload, args.timeout))
        finally:
            for proc in procs:
                proc.stop()
    medians: dict[str, float | None] = {}
    layout = "classic (--no-batching)" if args.classic else "batched (the default)"
    print(f"{args.keys} pipelined SetQ ({args.value_size}-byte values) + Noop, {args.runs} interleaved runs, "
          f"proxies {layout}")
    print(f"{'target':<8} {'median s':>9} {'keys/s':>10}  runs")
    for name, runs in times.items():
        ok = [t for t in runs if t is not None]
        medians[name] = statistics.median(ok) if len(ok) == len(runs) else None
        median = medians[name]
        shown = ", ".join("fail" if t is None else f"{t:.3f}" for t in runs)
        rate = f"{args.keys / median:10.0f}" if median else f"{'-':>10}"
        print(f"{name:<8} {median if median is not None else float('nan'):9.3f} {rate}  {shown}")
    only, both = medians["l1only"], medians["l1l2"]
    if only and both:
        print(f"l1l2 / l1only = {both / only:.2f}x")
    return 0 if all(m is not None for m in medians.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
