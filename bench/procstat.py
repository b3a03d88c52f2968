"""CPU time and resident memory of a process tree, read from /proc.

A proxy with ``--workers N`` runs N worker processes under one parent, so every figure here is summed
over a PID and all its descendants. CPU is sampled in a background thread with timestamps so that the
benchmark can interpolate the CPU spent inside the load generator's measurement window exactly,
excluding connection set-up and warm-up.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def descendants(pid: int) -> list[int]:
    """PID and every process below it, found through /proc/PID/task/TID/children."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        with contextlib.suppress(OSError):
            for tid in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{tid}/children") as f:
                    todo.extend(int(child) for child in f.read().split())
    return found


def cpu_seconds(pids: Iterable[int]) -> float:
    """utime + stime of the given processes (all their threads), in seconds; gone processes count 0."""
    ticks = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            with open(f"/proc/{pid}/stat") as f:
                # the command name may contain spaces: fields are counted after its closing paren
                fields = f.read().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return ticks / CLOCK_TICKS


def rss_bytes(pids: Iterable[int]) -> int:
    """Resident set size of the given processes, summed, in bytes."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError), open(f"/proc/{pid}/statm") as f:
            total += int(f.read().split()[1]) * PAGE_SIZE
    return total


def machine_busy_seconds() -> float:
    """CPU seconds all CPUs spent in processes (user, nice, system, steal) since boot, from /proc/stat.

    irq and softirq time is left out: loopback TCP is processed in softirq context, which the kernel
    does not charge to any process, so counting it would show our own traffic as foreign load."""
    with open("/proc/stat") as f:
        user, nice, system, _idle, _iowait, _irq, _softirq, steal = map(int, f.readline().split()[1:9])
    return (user + nice + system + steal) / CLOCK_TICKS


MACHINE = "_machine"  # the pseudo-tree "every process on the machine", to spot foreign load


@dataclass
class Sample:
    at: float  # time.time(), comparable with mcload's start_epoch
    cpu: dict[str, float]
    rss: dict[str, int]


@dataclass
class Sampler:
    """Samples CPU and RSS of named process trees every ``interval`` seconds until stopped."""

    roots: dict[str, int]
    interval: float = 0.1
    samples: list[Sample] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Sampler:
        # the trees are resolved once: workers are forked at start-up, before any benchmark run
        self._trees = {name: descendants(pid) for name, pid in self.roots.items()}
        self._take()
        self._thread = threading.Thread(target=self._loop, name="procstat", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()
        self._take()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._take()

    def _take(self) -> None:
        cpu = {name: cpu_seconds(tree) for name, tree in self._trees.items()}
        cpu[MACHINE] = machine_busy_seconds()
        rss = {name: rss_bytes(tree) for name, tree in self._trees.items()}
        self.samples.append(Sample(time.time(), cpu, rss))

    def cpu_between(self, name: str, start: float, end: float) -> float:
        """CPU seconds the tree NAME used between two Unix times, linearly interpolated."""
        return interpolate(self.samples, name, end) - interpolate(self.samples, name, start)

    def peak_rss(self, name: str) -> int:
        return max((s.rss[name] for s in self.samples), default=0)


def interpolate(samples: list[Sample], name: str, at: float) -> float:
    """Cumulative CPU of NAME at time AT from the samples around it (clamped to the first/last)."""
    if not samples:
        return 0.0
    if at <= samples[0].at:
        return samples[0].cpu[name]
    for before, after in itertools.pairwise(samples):
        if before.at <= at <= after.at:
            span = after.at - before.at
            share = (at - before.at) / span if span > 0 else 1.0
            return before.cpu[name] + share * (after.cpu[name] - before.cpu[name])
    return samples[-1].cpu[name]
