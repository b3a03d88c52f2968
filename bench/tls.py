"""TLS against plaintext on the same proxy: requests per second, the proxy's CPU per request, and
its memory per 1,000 idle clients.

One proxy (batched layout, the operator's default) serves a TLS port and a plaintext port
(``plain_listen``) in front of one memcached; the same Python load generator (uvloop, one
process, closed loop, 90% get / 10% set of 100-byte values) drives each port in turn with the same
number of connections. The load generator's own TLS cost lands on its core, not the proxy's, so
compare the proxy's CPU per request (its CPU seconds over the requests it served); the requests
per second are bounded by the one-process load generator on a small machine.

    .venv/bin/python bench/tls.py --quick      # 1,000 connections, 4 s per port
    .venv/bin/python bench/tls.py --conns 2000 --duration 10
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import random
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # tests.security.certs makes the certificates

from procstat import cpu_seconds, rss_bytes  # noqa: E402
from stacks import free_port, raise_nofile_limit, stop, wait_connectable  # noqa: E402

from tests.security.certs import Authority  # noqa: E402

KEYS = 1000
VALUE = b"v" * 100


def client_context(ca_file: str | None) -> ssl.SSLContext | None:
    if ca_file is None:
        return None
    ctx = ssl.create_default_context(cafile=ca_file)
    ctx.check_hostname = False
    return ctx


async def _drive(port: int, ca_file: str | None, conns: int, warmup: float, duration: float,
                 idle: bool, started=lambda: None) -> dict:
    ctx = client_context(ca_file)
    sem = asyncio.Semaphore(64)  # connects (handshakes) in flight

    async def connect() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        async with sem:
            return await asyncio.open_connection("127.0.0.1", port, ssl=ctx,
                                                 server_hostname="localhost" if ctx else None)

    streams = await asyncio.gather(*(connect() for _ in range(conns)))
    if idle:
        for _reader, writer in streams:  # one request each, then idle
            writer.write(b"get k0\r\n")
        for reader, _ in streams:
            await reader.readuntil(b"END\r\n")
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        return {}
    counts = [0]
    measuring = [False]
    stop_at = time.monotonic() + warmup + duration  # (from when every connection is up)

    async def loop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        rnd = random.Random()
        while time.monotonic() < stop_at:
            key = b"k%d" % rnd.randrange(KEYS)
            if rnd.random() < 0.9:
                writer.write(b"get %b\r\n" % key)
                await reader.readuntil(b"END\r\n")
            else:
                writer.write(b"set %b 0 0 %d\r\n%b\r\n" % (key, len(VALUE), VALUE))
                await reader.readline()
            if measuring[0]:
                counts[0] += 1

    tasks = [asyncio.ensure_future(loop(r, w)) for r, w in streams]
    await asyncio.sleep(warmup)
    measuring[0] = True
    started()
    t0 = time.monotonic()
    await asyncio.gather(*tasks)
    elapsed = time.monotonic() - t0
    for _, writer in streams:
        writer.close()
    return {"requests": counts[0], "seconds": elapsed}


def load_process(port: int, ca_file: str | None, conns: int, warmup: float, duration: float, out) -> None:
    raise_nofile_limit()
    import uvloop

    out.send(uvloop.run(_drive(port, ca_file, conns, warmup, duration, idle=False,
                               started=lambda: out.send("start"))))


def measure_load(proxy: subprocess.Popen, port: int, ca_file: str | None, conns: int, warmup: float,
                 duration: float) -> dict:
    parent, child = mp.Pipe()
    proc = mp.Process(target=load_process, args=(port, ca_file, conns, warmup, duration, child))
    proc.start()
    assert parent.recv() == "start"  # every connection up and warmed up: the window opens
    cpu0, t0 = cpu_seconds([proxy.pid]), time.monotonic()
    result = parent.recv()
    cpu1, t1 = cpu_seconds([proxy.pid]), time.monotonic()
    proc.join()
    window = min(t1 - t0, result["seconds"]) or 1.0
    rps = result["requests"] / result["seconds"]
    return {"ops_per_s": rps, "proxy_cpu_us_per_request": (cpu1 - cpu0) / (rps * window) * 1e6}


def measure_idle(proxy: subprocess.Popen, port: int, ca_file: str | None, conns: int) -> float:
    """MiB of proxy RSS per 1,000 idle clients (each answered one get)."""
    before = rss_bytes([proxy.pid])
    cmd = [sys.executable, __file__, "--idle-client", str(port), str(conns), ca_file or "-"]
    child = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                             preexec_fn=raise_nofile_limit)
    assert child.stdout is not None and child.stdin is not None
    line = child.stdout.readline()
    if line.strip() != "ready":
        raise RuntimeError("idle clients did not come up")
    time.sleep(0.5)  # (a measurement pause, not synchronisation: the proxy's allocator settles)
    after = rss_bytes([proxy.pid])
    child.stdin.close()
    child.wait(60)
    return (after - before) / (1 << 20) / (conns / 1000)


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--idle-client":
        import uvloop

        port, conns, ca = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
        raise_nofile_limit()
        uvloop.run(_drive(port, None if ca == "-" else ca, conns, 0, 0, idle=True))
        return 0
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="1,000 connections, 4 s per port")
    p.add_argument("--conns", type=int, default=1000)
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--warmup", type=float, default=2.0)
    args = p.parse_args()
    if args.quick:
        args.conns, args.duration = 1000, 4.0
    raise_nofile_limit()
    work = Path(tempfile.mkdtemp(prefix="cacheproxy-tls-bench-"))
    ca = Authority(str(work))
    server = ca.issue("server")
    mc_port = free_port()
    mc = subprocess.Popen(["memcached", "-U", "0", "-l", "127.0.0.1", "-p", str(mc_port), "-t", "2", "-c", "8192"]
                          + (["-u", "root"] if os.geteuid() == 0 else []), stderr=subprocess.DEVNULL)
    config = work / "config.yaml"
    config.write_text("batching: {enabled: true}\nmax_connections: 50000\n")

    def start_proxy() -> tuple[subprocess.Popen, int, int]:
        tls_port, plain_port, admin_port = free_port(), free_port(), free_port()
        log = work / "proxy.log"
        proxy = subprocess.Popen(
            [sys.executable, "-m", "cacheproxy", "--listen", f"127.0.0.1:{tls_port}", "--l1", f"127.0.0.1:{mc_port}",
             "--admin", f"127.0.0.1:{admin_port}", "--plain-listen", f"127.0.0.1:{plain_port}",
             "--config", str(config), "--tls-cert", server.cert, "--tls-key", server.key, "--log-level", "warning"],
            stdout=log.open("w"), stderr=subprocess.STDOUT, preexec_fn=raise_nofile_limit)
        wait_connectable(f"127.0.0.1:{plain_port}", proxy, log=log)
        wait_connectable(f"127.0.0.1:{tls_port}", proxy, log=log)
        return proxy, tls_port, plain_port

    try:
        proxy, tls_port, plain_port = start_proxy()
        import socket

        with socket.create_connection(("127.0.0.1", plain_port)) as s:  # prefill: gets are hits
            s.sendall(b"".join(b"set k%d 0 0 %d noreply\r\n%b\r\n" % (i, len(VALUE), VALUE) for i in range(KEYS))
                      + b"mn\r\n")
            buf = b""
            while not buf.endswith(b"MN\r\n"):
                buf += s.recv(65536)
        build = subprocess.run([sys.executable, "-m", "cacheproxy", "--version"], capture_output=True, text=True)
        print(f"{build.stdout.strip()}; batched; {args.conns} connections, {args.duration:g} s per port")
        results = {}
        for name, port, ca_file in (("plain", plain_port, None), ("tls", tls_port, ca.ca_file)):
            results[name] = measure_load(proxy, port, ca_file, args.conns, args.warmup, args.duration)
        stop(proxy)
        for name, ca_file in (("plain", None), ("tls", ca.ca_file)):  # a fresh proxy each: RSS not reused
            proxy, tls_port, plain_port = start_proxy()
            port = tls_port if ca_file else plain_port
            results[name]["idle_mib_per_1000"] = measure_idle(proxy, port, ca_file, args.conns)
            stop(proxy)
        for name, r in results.items():
            print(f"{name:6} {r['ops_per_s']:9.0f} ops/s  {r['proxy_cpu_us_per_request']:6.1f} us proxy CPU/request  "
                  f"{r['idle_mib_per_1000']:5.2f} MiB per 1,000 idle clients")
        t, pl = results["tls"], results["plain"]
        print(f"tls/plain: ops/s x{t['ops_per_s'] / pl['ops_per_s']:.2f}, CPU/request "
              f"x{t['proxy_cpu_us_per_request'] / pl['proxy_cpu_us_per_request']:.2f}")
    finally:
        stop(proxy)
        stop(mc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
