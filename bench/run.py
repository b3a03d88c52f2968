#!/usr/bin/env python3
"""Benchmark cacheproxy against memcached direct and twemproxy, in one run, on this machine.

Every target runs in front of its own fresh memcached; the C load generator (bench/mcload.c) drives
them in interleaved order (the order rotates every repetition), and medians over the repetitions are
reported. See docs/benchmarks.md for what each column means.

    python bench/run.py                                  # the full run (~15 min)
    python bench/run.py --quick                          # a smoke run (~2 min)
    python bench/run.py --conns 50,9980 --targets direct,twemproxy,l1only,batched --reps 3
    python bench/run.py --targets direct,l1only,l1only-w2 --profile l1only
    python bench/run.py --charts docs/img                # also draw docs/img/{throughput,latency}.png
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import loadgen
import procstat
import pyspy
import report
import stacks

try:
    import charts
except ImportError:  # matplotlib is optional: only --charts needs it
    charts = None

RESULTS = Path(__file__).resolve().parent / "results"
MIB = 1 << 20


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--targets",
        default="direct,twemproxy,l1only,batched",
        help=f"comma list of {', '.join(stacks.KINDS)}; proxies take -wN (l1only-w2; mcproxy-w2: 2 threads)",
    )
    p.add_argument("--workers", type=int, default=1, help="worker processes for proxy targets without -wN")
    p.add_argument("--conns", help="closed-loop connection counts, comma list (default 50,9980)")
    p.add_argument("--reps", type=int, help="repetitions of every run (default 3)")
    p.add_argument("--duration", type=int, help="measured seconds per run (default 10)")
    p.add_argument("--warmup", type=int, default=1, help="unmeasured seconds after connecting")
    p.add_argument("--rate-conns", type=int, help="connections of the fixed-rate run, 0 = none (default 9980)")
    p.add_argument("--rate", type=float, default=0.5, help="requests/s per connection in the fixed-rate run")
    p.add_argument("--idle-conns", type=int, help="idle connections for the memory figure, 0 = none (default 9980)")
    p.add_argument("--keys", type=int, default=10000)
    p.add_argument("--value-size", type=int, default=100)
    p.add_argument("--get-ratio", type=float, default=0.9)
    p.add_argument("--loadgen-threads", type=int, default=2)
    p.add_argument(
        "--backend",
        choices=["unix", "tcp"],
        default="unix",
        help="how the proxies reach their memcached (the pod uses a unix socket)",
    )
    p.add_argument("--memcached-threads", type=int, default=2)
    p.add_argument(
        "--memcached-proxy",
        metavar="PATH",
        default=stacks.default_memcached_proxy(),
        help="memcached built with --enable-proxy, for the mcproxy target "
        "(default: the one bench/build.sh memcached-proxy built, if present)",
    )
    p.add_argument("--profile", metavar="TARGET", help="after the benchmark, py-spy profile TARGET under load")
    p.add_argument("--profile-conns", type=int, default=9980)
    p.add_argument("--profile-seconds", type=int, default=15)
    p.add_argument("--profile-only", action="store_true", help="skip the benchmark, only profile")
    p.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 1 rep of 3 s at 50 and 2000 connections, 2000 idle and rate connections",
    )
    p.add_argument("--out", type=Path, default=RESULTS, help="folder for the JSON results")
    p.add_argument("--charts", type=Path, metavar="DIR", help="draw PNG charts of the results into DIR (charts.py)")
    args = p.parse_args(argv)
    if args.charts and charts is None:
        p.error("--charts needs matplotlib (pip install -e '.[test]')")
    quick = {"conns": "50,2000", "reps": 1, "duration": 3, "rate_conns": 2000, "idle_conns": 2000}
    full = {"conns": "50,9980", "reps": 3, "duration": 10, "rate_conns": 9980, "idle_conns": 9980}
    for key, value in (quick if args.quick else full).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    for target in args.targets:
        kind, _, _ = stacks.parse_target(target)  # fail early on a typo
        if kind == "mcproxy" and not args.memcached_proxy:
            p.error("mcproxy needs memcached built with its proxy: sh bench/build.sh memcached-proxy, "
                    "or --memcached-proxy PATH")
    args.conns = [int(c) for c in str(args.conns).split(",") if c.strip()]
    return args


def scenarios(args: argparse.Namespace) -> dict[str, dict]:
    found = {f"closed-{c}": {"conns": c, "rate": 0.0, "duration": args.duration} for c in args.conns}
    if args.rate_conns:
        found[f"rate-{args.rate_conns}x{args.rate:g}"] = {
            "conns": args.rate_conns,
            "rate": args.rate,
            "duration": max(args.duration, 10),
        }
    return found


def stack_options(args: argparse.Namespace) -> stacks.Options:
    return stacks.Options(args.backend, args.memcached_threads, memcached_proxy=args.memcached_proxy)


def settle(stack_list: list[stacks.Stack], timeout: float = 20.0) -> None:
    """Wait until every process is idle again (a proxy closing 10k connections must not overlap a run)."""
    pids = [pid for s in stack_list for root in s.roots.values() for pid in procstat.descendants(root)]
    deadline = time.monotonic() + timeout
    before, at = procstat.cpu_seconds(pids), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.3)
        now_cpu, now = procstat.cpu_seconds(pids), time.monotonic()
        if (now_cpu - before) / (now - at) < 0.05:
            return
        before, at = now_cpu, now


def backend_connections(stack: stacks.Stack, stop: threading.Event, seen: list[int]) -> None:
    """Poll the memcached's curr_connections once a second (minus the poll's own connection)."""
    while not stop.wait(1.0):
        count = stacks.memcached_stat(stack.backend, "curr_connections")
        if count is not None:
            seen.append(count - 1)


def measure(stack: stacks.Stack, binary: str, workload: loadgen.Workload, scenario: dict, warmup: int) -> dict:
    seen: list[int] = []
    stop = threading.Event()
    poller = threading.Thread(target=backend_connections, args=(stack, stop, seen), daemon=True)
    poller.start()
    try:
        with procstat.Sampler(stack.roots) as sampler:
            result = loadgen.run(
                binary,
                stack.port,
                workload,
                conns=scenario["conns"],
                duration=scenario["duration"],
                warmup=warmup,
                rate=scenario["rate"],
            )
        if "start_epoch" in result and result.get("ops"):
            start = result["start_epoch"]
            end = start + result["seconds"]
            for role in stack.roots:
                cpu = sampler.cpu_between(role, start, end)
                result[f"{role}_cpu_cores"] = cpu / result["seconds"]
                result[f"{role}_cpu_us"] = cpu * 1e6 / result["ops"]
                result[f"{role}_peak_rss_mib"] = sampler.peak_rss(role) / MIB
            machine = sampler.cpu_between(procstat.MACHINE, start, end) / result["seconds"]
            ours = sum(result[f"{role}_cpu_cores"] for role in stack.roots) + result.get("cpu_cores", 0)
            result["foreign_cpu_cores"] = max(0.0, machine - ours)  # other load on the machine: noise
    finally:
        stop.set()
        poller.join()
    result["memcached_conns_max"] = max(seen, default=None)
    return result


def benchmark(args: argparse.Namespace, binary: str, workload: loadgen.Workload, workdir: Path) -> list[dict]:
    """All targets up at once, each prefilled; then for each rep, scenario and target, interleaved."""
    runs: list[dict] = []
    opts = stack_options(args)
    up: dict[str, stacks.Stack] = {}
    try:
        for target in args.targets:
            stack = stacks.start_stack_or_none(target, workdir / f"load-{target}", opts, args.workers)
            if stack:
                try:
                    loadgen.prefill(binary, stack.port, workload)
                    up[target] = stack
                except Exception as exc:  # a target that cannot serve is reported, the others still run
                    print(f"  {target}: prefill failed, skipped: {exc}\n{stack.logs()}", file=sys.stderr)
                    stack.stop()
        live = [t for t in args.targets if t in up]
        if not live:
            return runs
        for rep in range(args.reps):
            order = live[rep % len(live) :] + live[: rep % len(live)]
            for name, scenario in scenarios(args).items():
                for target in order:
                    settle(list(up.values()))
                    result = measure(up[target], binary, workload, scenario, args.warmup)
                    result |= {"target": target, "scenario": name, "rep": rep}
                    runs.append(result)
                    log_run(result)
    finally:
        for stack in up.values():
            stack.stop()
    return runs


def log_run(r: dict) -> None:
    if "ops_per_sec" not in r:
        print(
            f"  {r['scenario']:>16} {r['target']:>12} rep {r['rep']}: FAILED rc={r['rc']} {r['stderr']}",
            file=sys.stderr,
            flush=True,
        )
        return
    proxy = f"{r['proxy_cpu_us']:.1f}" if "proxy_cpu_us" in r else "-"
    print(
        f"  {r['scenario']:>16} {r['target']:>12} rep {r['rep']}: {r['ops_per_sec']:>9,.0f} ops/s "
        f"proxy {proxy} µs/req, memcached {r.get('memcached_cpu_us', 0):.1f} µs/req, "
        f"p99 {r['p99_us'] / 1000:.2f} ms, errors {r['errors'] + r['disconnects']}, "
        f"connect {r['connect_s']:.1f} s, foreign load {r.get('foreign_cpu_cores', 0):.2f} cores"
        + (f" [{r['stderr'][:200]}]" if r["stderr"] else ""),
        file=sys.stderr,
        flush=True,
    )


def rss_when_stable(stack: stacks.Stack, timeout: float = 10.0) -> dict[str, int]:
    """RSS per role once it stops moving (two readings 0.5 s apart within 0.5%)."""
    trees = {role: procstat.descendants(pid) for role, pid in stack.roots.items()}
    deadline = time.monotonic() + timeout
    last = {role: procstat.rss_bytes(t) for role, t in trees.items()}
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = {role: procstat.rss_bytes(t) for role, t in trees.items()}
        if all(abs(now[r] - last[r]) <= 0.005 * max(last[r], 1) for r in now):
            return now
        last = now
    return last


def idle_memory(args: argparse.Namespace, binary: str, workload: loadgen.Workload, workdir: Path) -> list[dict]:
    """RSS delta of N idle connections, in fresh processes (no heap left over from a load run)."""
    results = []
    opts = stack_options(args)
    for rep in range(args.reps):
        for target in args.targets:
            stack = stacks.start_stack_or_none(target, workdir / f"idle-{target}-{rep}", opts, args.workers)
            if stack is None:
                results.append({"target": target, "rep": rep, "error": "did not start"})
                continue
            try:
                loadgen.prefill(binary, stack.port, workload)
                loadgen.run(binary, stack.port, workload, conns=10, duration=1, warmup=0)  # warm code paths
                settle([stack])
                before = rss_when_stable(stack)
                clients = loadgen.IdleClients(binary, stack.port, workload, args.idle_conns)
                try:
                    after = rss_when_stable(stack)
                finally:
                    clients.close()
                front = "proxy" if "proxy" in before else "memcached"
                per_1k = {role: (after[role] - before[role]) / MIB / (args.idle_conns / 1000) for role in before}
                result = {
                    "target": target,
                    "rep": rep,
                    "conns": args.idle_conns,
                    "rss_before": before,
                    "rss_after": after,
                    "front_mib_per_1k": per_1k[front],
                    "memcached_mib_per_1k": per_1k["memcached"],
                    "connect_s": clients.info["connect_s"],
                }
                print(
                    f"  idle {target:>12} rep {rep}: {per_1k[front]:.2f} MiB per 1k conns "
                    f"(memcached {per_1k['memcached']:.2f})",
                    file=sys.stderr,
                    flush=True,
                )
            except Exception as exc:  # a target that cannot run is reported, not fatal
                result = {"target": target, "rep": rep, "error": f"{exc}\n{stack.logs()}"}
                print(f"  idle {target:>12} rep {rep}: FAILED {exc}", file=sys.stderr, flush=True)
            finally:
                stack.stop()
            results.append(result)
    return results


def machine(args: argparse.Namespace) -> dict:
    def version(cmd: list[str]) -> str:
        with contextlib.suppress(Exception):
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
            return (out.stdout or out.stderr).strip().splitlines()[0]
        return "?"

    return {
        "cpus": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "memcached": version(["memcached", "-V"]),
        "nutcracker": version(["nutcracker", "--version"]),
        "memcached_proxy": version([args.memcached_proxy, "-V"]) if args.memcached_proxy else None,
        "nofile": resource.getrlimit(resource.RLIMIT_NOFILE),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    stacks.raise_nofile_limit()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally blocks that stop processes
    binary = loadgen.build()
    workload = loadgen.Workload(args.keys, args.value_size, args.get_ratio, args.loadgen_threads)
    started = time.strftime("%Y%m%d-%H%M%S")
    args.out.mkdir(parents=True, exist_ok=True)
    record: dict = {
        "started": started,
        "argv": sys.argv,
        "machine": machine(args),
        "workload": vars(workload),
        "scenarios": scenarios(args),
    }
    with tempfile.TemporaryDirectory(prefix="cacheproxy-bench-") as tmp:
        workdir = Path(tmp)
        if not args.profile_only:
            print(f"benchmark: targets {args.targets}, {args.reps} reps", file=sys.stderr, flush=True)
            if args.idle_conns:
                record["idle"] = idle_memory(args, binary, workload, workdir)
            record["runs"] = benchmark(args, binary, workload, workdir)
            record["summary"] = report.summarise(record["runs"], args.targets)
            record["idle_summary"] = report.summarise_idle(record.get("idle", []), args.targets)
            record["markdown"] = report.markdown(record["summary"], record["idle_summary"], record["scenarios"])
        if args.profile:
            record["profile"] = pyspy.profile_target(
                args.profile,
                binary,
                workload,
                workdir,
                args.out / f"profile-{started}",
                stack_options(args),
                args.profile_conns,
                args.profile_seconds,
            )
    out = args.out / f"bench-{started}.json"
    out.write_text(json.dumps(record, indent=1, default=str))
    if "markdown" in record:
        print(f"## cacheproxy bench {started} ({record['machine']['cpus']} CPUs)\n\n{record['markdown']}")
    if "profile" in record:
        print(record["profile"]["markdown"])
    print(f"JSON: {out}", file=sys.stderr)
    if args.charts and record.get("runs"):
        for path in charts.draw([record], args.charts):
            print(f"chart: {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
