"""Profile a proxy target under load with py-spy (``pip install py-spy``) and rank its hot spots.

While mcload drives the target, py-spy records twice in a row: raw collapsed stacks (aggregated by
function) for the ranking below, then a flamegraph SVG for reading by eye; a ``py-spy dump`` of the
live stacks is saved too. The ranking has two views: *self* (samples whose innermost frame is the
function: where the interpreter spends time) and *inclusive* (samples with the function anywhere on
the stack: which code paths cost the most).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path

import loadgen
import procstat
import stacks

FRAME_RE = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def parse_collapsed(text: str) -> tuple[Counter, Counter, int]:
    """(self samples, inclusive samples, total samples) per ``function (file)`` from py-spy raw output."""
    own: Counter = Counter()
    inclusive: Counter = Counter()
    total = 0
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [short_frame(f) for f in stack.split(";") if f and not f.startswith("process ")]
        if not frames:
            continue
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    return own, inclusive, total


def short_frame(frame: str) -> str:
    """``data_received (cacheproxy/server/conn.py:42)`` -> ``data_received (cacheproxy/server/conn.py)``."""
    match = FRAME_RE.match(frame.strip())
    return f"{match['func']} ({match['file']})" if match else frame.strip()


def ranking(counter: Counter, total: int, top: int) -> list[tuple[str, int, float]]:
    return [(name, n, 100.0 * n / total) for name, n in counter.most_common(top)] if total else []


def hot_spots_markdown(own: Counter, inclusive: Counter, total: int, top: int = 20) -> str:
    lines = [
        f"Samples: {total} (py-spy, 100 Hz, by function)",
        "",
        "| # | self % | function (self: innermost frame) |",
        "|---|---|---|",
    ]
    lines += [f"| {i} | {pct:.1f} | `{name}` |" for i, (name, _, pct) in enumerate(ranking(own, total, top), 1)]
    lines += ["", "| # | inclusive % | function (anywhere on the stack) |", "|---|---|---|"]
    lines += [f"| {i} | {pct:.1f} | `{name}` |" for i, (name, _, pct) in enumerate(ranking(inclusive, total, top), 1)]
    return "\n".join(lines)


def client_connections(admin: str | None) -> float | None:
    """The proxy's ``cacheproxy_client_connections`` gauge (totals across workers), or None."""
    if not admin:
        return None
    try:
        with urllib.request.urlopen(f"http://{admin}/metrics", timeout=5) as resp:
            text = resp.read().decode()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("cacheproxy_client_connections "):
            return float(line.split()[1])
    return None


def wait_for_load(stack: stacks.Stack, conns: int, timeout: float = 120.0) -> None:
    """Poll until every client is connected (the proxy's gauge) and the proxy burns half a core,
    so the profile holds the steady state, not connection set-up."""
    tree = procstat.descendants(stack.roots["proxy"])
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        connected = client_connections(stack.admin)
        if connected is None or connected >= conns:
            break
        time.sleep(0.5)
    time.sleep(2.0)  # the first answers on fresh connections, then the warm-up second
    before, at = procstat.cpu_seconds(tree), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.5)
        cpu, now = procstat.cpu_seconds(tree), time.monotonic()
        if (cpu - before) / (now - at) > 0.5:
            return
        before, at = cpu, now
    raise RuntimeError("the proxy never got busy: is the load generator connected?")


def py_spy(*args: str) -> subprocess.CompletedProcess:
    # next to this interpreter first: a venv's py-spy is there even when the venv is not activated
    exe = shutil.which("py-spy", path=os.path.dirname(sys.executable)) or shutil.which("py-spy")
    if not exe:
        raise RuntimeError("py-spy not found: pip install py-spy")
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=600)


def profile_target(
    target: str,
    binary: str,
    workload: loadgen.Workload,
    workdir: Path,
    out: Path,
    opts: stacks.Options,
    conns: int,
    seconds: int,
) -> dict:
    kind, workers, _ = stacks.parse_target(target)
    if kind not in ("l1only", "batched"):
        raise ValueError("only the Python proxy targets can be profiled with py-spy")
    out.mkdir(parents=True, exist_ok=True)
    stack = stacks.start_stack(target, workdir / f"profile-{target}", opts)
    try:
        loadgen.prefill(binary, stack.port, workload)
        pid = str(stack.roots["proxy"])
        sub = ["--subprocesses"] if workers > 1 else []
        load: dict = {}
        runner = threading.Thread(
            target=lambda: load.update(
                loadgen.run(binary, stack.port, workload, conns=conns, duration=2 * seconds + 20, warmup=1)
            )
        )
        runner.start()
        try:
            wait_for_load(stack, conns)
            raw = out / "profile.raw.txt"
            svg = out / "profile.svg"
            rec_raw = py_spy(
                "record",
                "--pid",
                pid,
                "--format",
                "raw",
                "--function",
                "--output",
                str(raw),
                "--duration",
                str(seconds),
                *sub,
            )
            rec_svg = py_spy("record", "--pid", pid, "--output", str(svg), "--duration", str(seconds), *sub)
            dump = py_spy("dump", "--pid", pid, *sub)
            (out / "dump.txt").write_text(dump.stdout + dump.stderr)
        finally:
            runner.join()
        if rec_raw.returncode != 0 or not raw.exists():
            raise RuntimeError(f"py-spy record failed: {rec_raw.stderr}")
        own, inclusive, total = parse_collapsed(raw.read_text())
        markdown = (
            f"### py-spy profile of {target} under {conns:,} closed-loop connections "
            f"({load.get('ops_per_sec', 0):,.0f} ops/s while profiled)\n\n"
            + hot_spots_markdown(own, inclusive, total)
            + f"\n\nFlamegraph: {svg} ; raw stacks: {raw} ; live dump: {out / 'dump.txt'}\n"
        )
        print(
            f"  profile written to {out}" + ("" if rec_svg.returncode == 0 else f" (svg: {rec_svg.stderr})"),
            file=sys.stderr,
        )
        return {
            "target": target,
            "conns": conns,
            "load": load,
            "samples": total,
            "markdown": markdown,
            "self": ranking(own, total, 40),
            "inclusive": ranking(inclusive, total, 40),
            "dir": str(out),
        }
    finally:
        stack.stop()
