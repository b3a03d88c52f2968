#!/usr/bin/env python3
"""A 3-member ring against twemproxy over the same 3 memcacheds: a short, interleaved smoke.

Three memcacheds; twemproxy (ketama + md5) in front of all three; three proxies forming a ring,
each in front of one of them (member names = the memcacheds' addresses, so both place every key
on the same memcached). bench/mcload.c drives one entry point of each (a third of the ring's
keys are local to the proxy driven, two thirds forwarded), prefilled first; the targets
alternate, and ops/s, p50/p99 and the proxies' CPU per request are printed as JSON lines.

    python bench/ring.py --duration 5 --conns 50      # a smoke run (~1 min)
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import loadgen
import procstat
from stacks import free_port, raise_nofile_limit, wait_connectable

REPO = Path(__file__).resolve().parents[1]


def spawn(cmd: list[str], log: Path) -> subprocess.Popen:
    with open(log, "wb") as out:  # 9,980 clients need as many descriptors: the hard limit
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, preexec_fn=raise_nofile_limit)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--conns", type=int, default=50)
    p.add_argument("--reps", type=int, default=1)
    p.add_argument("--keep", action="store_true", help="keep the work directory (logs, configs)")
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ring-bench-"))
    procs: dict[str, subprocess.Popen] = {}
    try:
        mc_ports = [free_port() for _ in range(3)]
        for i, port in enumerate(mc_ports):
            procs[f"memcached{i}"] = spawn(["memcached", "-U", "0", "-l", "127.0.0.1", "-p", str(port), "-t", "2",
                                            "-m", "256", "-u", "root"], work / f"mc{i}.log")
            wait_connectable(f"127.0.0.1:{port}", procs[f"memcached{i}"], log=work / f"mc{i}.log")
        names = [f"127.0.0.1:{port}" for port in mc_ports]
        twem_port = free_port()
        (work / "nc.yml").write_text(
            "ring:\n"
            f"  listen: 127.0.0.1:{twem_port}\n  hash: md5\n  distribution: ketama\n  auto_eject_hosts: false\n"
            "  preconnect: true\n  backlog: 4096\n  servers:\n" + "".join(f"    - {n}:1\n" for n in names))
        procs["twemproxy"] = spawn([shutil.which("nutcracker") or "/usr/sbin/nutcracker", "-c", str(work / "nc.yml"),
                                    "-s", str(free_port()), "-a", "127.0.0.1", "-o", str(work / "nc.log")],
                                   work / "twem.log")
        wait_connectable(f"127.0.0.1:{twem_port}", procs["twemproxy"], log=work / "twem.log")
        proxy_ports, peer_ports = [free_port() for _ in range(3)], [free_port() for _ in range(3)]
        members = [{"name": names[i], "peer": f"127.0.0.1:{peer_ports[i]}"} for i in range(3)]
        (work / "ring.yaml").write_text(json.dumps({"batching": {"enabled": True}, "log_level": "warning",
                                                    "ring": {"generation": 1, "members": members}}))
        for i in range(3):
            procs[f"proxy{i}"] = spawn(
                [sys.executable, "-m", "cacheproxy", "--listen", f"127.0.0.1:{proxy_ports[i]}", "--l1",
                 names[i], "--admin", f"127.0.0.1:{free_port()}", "--config", str(work / "ring.yaml"),
                 "--ring-self", names[i], "--ring-peer-listen", f"127.0.0.1:{peer_ports[i]}"], work / f"proxy{i}.log")
        for i in range(3):
            wait_connectable(f"127.0.0.1:{proxy_ports[i]}", procs[f"proxy{i}"], log=work / f"proxy{i}.log")
        binary = loadgen.build()
        workload = loadgen.Workload()
        targets = {"twemproxy": (twem_port, ["twemproxy"]),
                   "ring": (proxy_ports[0], ["proxy0", "proxy1", "proxy2"])}
        for port, _ in targets.values():
            loadgen.prefill(binary, port, workload)
        for rep in range(args.reps):
            for name, (port, roles) in (targets.items() if rep % 2 == 0 else reversed(targets.items())):
                pids = [procs[r].pid for r in roles]
                before = procstat.cpu_seconds(pids)
                started = time.monotonic()
                result = loadgen.run(binary, port, workload, conns=args.conns, duration=args.duration,
                                     warmup=args.warmup)
                cpu = procstat.cpu_seconds(pids) - before
                ops = result.get("ops") or 0
                print(json.dumps({"target": name, "rep": rep, "conns": args.conns,
                                  "ops_per_sec": result.get("ops_per_sec"), "p50_us": result.get("p50_us"),
                                  "p99_us": result.get("p99_us"),
                                  "errors": result.get("errors"), "misses": result.get("misses"),
                                  "proxy_cpu_us_per_op": round(cpu * 1e6 / ops, 1) if ops else None,
                                  "wall_s": round(time.monotonic() - started, 1)}), flush=True)
    finally:
        for proc in procs.values():
            proc.terminate()
        for proc in procs.values():
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        if args.keep:
            print(f"logs kept in {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
