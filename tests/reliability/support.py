"""What the reliability tests observe from outside the proxy: /proc, /metrics, a load driver.

Everything here polls with a deadline; nothing sleeps to synchronise.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from typing import TypeVar

from prometheus_client.parser import text_string_to_metric_families

from tests.support.procs import Proc

T = TypeVar("T")


def _status_field(pid: int, name: str) -> int:
    """A numeric field of /proc/PID/status."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(name + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {name} for {pid}")


def rss_kib(pid: int) -> int:
    """VmRSS of PID in KiB (resident memory, what the kubelet's OOM decisions follow)."""
    return _status_field(pid, "VmRSS")


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def thread_count(pid: int) -> int:
    return _status_field(pid, "Threads")


def metrics(admin: str) -> dict[tuple[str, tuple], float]:
    """Every sample of ``GET /metrics`` keyed by (name, sorted labels)."""
    with urllib.request.urlopen(f"http://{admin}/metrics", timeout=10) as r:
        text = r.read().decode()
    out: dict[tuple[str, tuple], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def metric(admin: str, name: str, **labels: str) -> float:
    return metrics(admin).get((name, tuple(sorted(labels.items()))), 0.0)


def wait_until(probe: Callable[[], T], ok: Callable[[T], bool], timeout: float, what: str,
               interval: float = 0.05) -> T:
    """Poll PROBE until OK(value) or TIMEOUT; fail with the last value seen."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if ok(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: still {value!r} after {timeout}s")
        time.sleep(interval)


class LoadDriver:
    """``tests.reliability.loaddriver`` in its own process, stopped by PID."""

    def __init__(self, addr: str, conns: int, *, rate: float = 1.0, seconds: float = 120.0,
                 prefix: str = "rel", size: int = 32) -> None:
        self.out_path = tempfile.mktemp(prefix="loaddriver-", suffix=".json")
        cmd = [sys.executable, "-m", "tests.reliability.loaddriver", addr, "--conns", str(conns),
               "--rate", str(rate), "--seconds", str(seconds), "--prefix", prefix, "--size", str(size),
               "--out", self.out_path]
        self.conns = conns
        self.seconds = seconds
        self.popen = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
        self.result: dict | None = None

    def _line(self, timeout: float) -> str:
        ready, _, _ = select.select([self.popen.stdout], [], [], timeout)
        if not ready:
            raise TimeoutError("load driver said nothing")
        return self.popen.stdout.readline().decode()

    def wait_ready(self, timeout: float = 120.0) -> int:
        """Block until every connection is open and has answered one round; return how many."""
        line = self._line(timeout)
        if not line.startswith("READY "):
            raise RuntimeError(f"load driver: {line!r} {self.popen.stderr.read().decode()[-2000:]}")
        return int(line.split()[1])

    def finish(self, timeout: float = 60.0) -> dict:
        """Tell the driver to stop (stdin EOF) and return its tally."""
        # Not communicate(): it reads the raw pipe and would miss what _line()'s buffered readline
        # already pulled in (a long tally line then arrives with a hole in it).
        errors: list[bytes] = []
        drain = threading.Thread(target=lambda: errors.append(self.popen.stderr.read()), daemon=True)
        drain.start()
        self.popen.stdin.close()  # EOF is the driver's signal to stop
        timer = threading.Timer(timeout, self.kill)
        timer.start()
        try:
            out = self.popen.stdout.read()
            self.popen.wait()
        finally:
            timer.cancel()
        drain.join(10)
        err = errors[0] if errors else b""
        lines = out.decode().strip().splitlines()
        if self.popen.returncode != 0 or not lines or lines[-1] != "DONE":
            raise RuntimeError(f"load driver exited {self.popen.returncode}: {err.decode()[-3000:]}")
        with open(self.out_path) as f:
            self.result = json.load(f)
        os.unlink(self.out_path)
        return self.result

    def kill(self) -> None:
        if self.popen.poll() is None:
            os.kill(self.popen.pid, signal.SIGKILL)
            self.popen.wait()


def ok_rounds_between(tally: dict, start: float, end: float) -> int:
    """Rounds answered correctly between two CLOCK_MONOTONIC times (100 ms resolution)."""
    return sum(n for bucket, n in tally["ok_per_100ms"].items() if start * 10 <= int(bucket) < end * 10)


def summary(tally: dict) -> dict:
    """The counters of a tally, without its event lists (for assertion messages)."""
    samples = {"wrong_samples": tally["wrong_samples"], "late_samples": tally["late_samples"]}
    return {k: v for k, v in tally.items() if isinstance(v, int | float)} | samples


def hold(seconds: float, proxy: Proc) -> None:
    """Keep the fault (or the load, or the idleness) going for SECONDS, checking the proxy stays alive."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert proxy.popen.poll() is None, "the proxy died"
        time.sleep(0.05)
