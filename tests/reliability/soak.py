"""The soak run: 10,000 connections at a steady rate for 10 minutes, memory sampled throughout.

    python -m tests.reliability.soak [--conns 10000] [--seconds 600] [--rate 0.5] [--interval 5]

Starts memcached and the proxy (batched backend pool: 10,000 clients with a backend connection
each would need more than the 20,000 descriptors a process may hold), then bench/mcload (C,
checks every answer) at RATE requests per second per connection. Every INTERVAL seconds it
samples the proxy's VmRSS, descriptors and threads. The report (one JSON line) gives the RSS
slope in MiB/min by least squares, over the whole run and after the first WARMUP seconds, and
the descriptors, threads and connections after the load ended, polled back to their baseline.
Exit status 0 only when every answer was right and nothing grew or leaked.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.reliability.support import fd_count, metric, rss_kib, thread_count
from tests.support.procs import start_memcached, start_proxy

ROOT = Path(__file__).resolve().parents[2]
POOL_SIZE = 8
SLOPE_LIMIT_MIB_PER_MIN = 0.5


def slope_per_minute(samples: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, MiB) samples, in MiB per minute."""
    n = len(samples)
    if n < 2:
        return 0.0
    mx = sum(t for t, _ in samples) / n
    my = sum(v for _, v in samples) / n
    var = sum((t - mx) ** 2 for t, _ in samples)
    if var == 0:
        return 0.0
    return 60.0 * sum((t - mx) * (v - my) for t, v in samples) / var


def build_mcload() -> str:
    out = subprocess.run(["sh", str(ROOT / "bench" / "build.sh")], capture_output=True, text=True, check=True)
    return out.stdout.strip().splitlines()[-1]


def back_to(probe, target: float, timeout: float) -> float:
    """Poll PROBE until it is at most TARGET or TIMEOUT passes; return the last value."""
    deadline = time.monotonic() + timeout
    value = probe()
    while value > target and time.monotonic() < deadline:
        time.sleep(0.2)
        value = probe()
    return value


def run(conns: int, seconds: int, rate: float, interval: float, warmup: float) -> dict:
    mcload = build_mcload()
    mc = start_memcached(args=["-c", "19000", "-b", "4096", "-m", "256"])
    cfg = tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False)
    cfg.write(f"batching: {{enabled: true, max_connections: {POOL_SIZE}}}\n")
    cfg.close()
    proxy = start_proxy(mc.addr, args=["--config", cfg.name])
    admin = proxy.extra["admin"]
    load = None
    try:
        base = {"fds": fd_count(proxy.pid), "threads": thread_count(proxy.pid), "rss_mib": rss_kib(proxy.pid) / 1024}
        host, port = proxy.addr.rsplit(":", 1)
        subprocess.run([mcload, "-H", host, "-p", port, "-k", "10000", "-s", "100", "-P"], check=True,
                       capture_output=True, timeout=120)
        load = subprocess.Popen([mcload, "-H", host, "-p", port, "-c", str(conns), "-t", "2", "-d", str(seconds),
                                 "-w", "0", "-k", "10000", "-s", "100", "-r", "0.1", "-R", str(rate)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        samples: list[tuple[float, float]] = []
        fds_max = threads_max = 0
        t0 = time.monotonic()
        deadline = t0 + seconds + 300  # connecting 10,000 clients comes first; bounded all the same
        while load.poll() is None and time.monotonic() < deadline:
            t = time.monotonic() - t0
            samples.append((t, rss_kib(proxy.pid) / 1024))
            fds_max, threads_max = max(fds_max, fd_count(proxy.pid)), max(threads_max, thread_count(proxy.pid))
            with contextlib.suppress(subprocess.TimeoutExpired):
                load.wait(timeout=interval)
        if load.poll() is None:
            load.kill()
        out, err = load.communicate(timeout=60)
        lines = out.strip().splitlines()
        result = json.loads(lines[-1]) if lines else {"error": err[-2000:]}
        after = {
            "client_connections": back_to(lambda: metric(admin, "cacheproxy_client_connections"), 0, 60),
            "backend_connections": metric(admin, "cacheproxy_backend_connections", backend="l1"),
            "fds": back_to(lambda: fd_count(proxy.pid), base["fds"] + POOL_SIZE, 60),
            "threads": back_to(lambda: thread_count(proxy.pid), base["threads"], 30),
            "rss_mib": rss_kib(proxy.pid) / 1024,
        }
        steady = [(t, v) for t, v in samples if t >= warmup]
        report = {
            "conns": conns, "seconds": seconds, "rate_per_conn": rate, "mcload_exit": load.returncode,
            "load": result, "baseline": base, "after": after, "fds_max": fds_max, "threads_max": threads_max,
            "rss_samples": len(samples),
            "rss_mib_first_last_max": [round(samples[0][1], 1), round(samples[-1][1], 1),
                                       round(max(v for _, v in samples), 1)] if samples else None,
            "rss_mib_per_minute": [round(v, 1) for t, v in samples if int(t) % 60 < interval] if samples else [],
            "rss_slope_mib_per_min": round(slope_per_minute(samples), 3),
            "rss_slope_after_warmup_mib_per_min": round(slope_per_minute(steady), 3),
            "proxy_alive": proxy.popen.poll() is None,
        }
        report["ok"] = bool(
            load.returncode == 0 and result.get("errors", 1) == 0 and result.get("disconnects", 1) == 0
            and report["proxy_alive"] and after["client_connections"] == 0
            and after["backend_connections"] <= POOL_SIZE and after["fds"] <= base["fds"] + POOL_SIZE
            and after["threads"] <= base["threads"]
            and abs(report["rss_slope_after_warmup_mib_per_min"]) <= SLOPE_LIMIT_MIB_PER_MIN)
        return report
    finally:
        if load is not None and load.poll() is None:
            load.kill()
            load.wait()
        proxy.stop()
        mc.stop()
        os.unlink(cfg.name)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--conns", type=int, default=10_000)
    p.add_argument("--seconds", type=int, default=600)
    p.add_argument("--rate", type=float, default=0.5, help="requests per second per connection")
    p.add_argument("--interval", type=float, default=5.0, help="seconds between RSS samples")
    p.add_argument("--warmup", type=float, default=60.0, help="seconds left out of the steady slope")
    a = p.parse_args()
    report = run(a.conns, a.seconds, a.rate, a.interval, a.warmup)
    print(json.dumps(report), flush=True)
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
