"""Drive a target with the C load generator (bench/mcload.c), built and cached by bench/build.sh."""

from __future__ import annotations

import json
import select
import subprocess
from dataclasses import dataclass

from stacks import build_c, raise_nofile_limit


def build() -> str:
    """Path of the compiled mcload (rebuilt only when mcload.c changed)."""
    return build_c("mcload")


@dataclass
class Workload:
    """90% get / 10% set of 100-byte values over 10,000 keys by default."""

    keys: int = 10000
    value_size: int = 100
    get_ratio: float = 0.9
    threads: int = 2
    max_pending: int = 256  # connects in flight per mcload thread (ramp-up)

    def args(self) -> list[str]:
        return [
            "-k",
            str(self.keys),
            "-s",
            str(self.value_size),
            "-r",
            f"{1 - self.get_ratio:g}",
            "-t",
            str(self.threads),
            "-C",
            str(self.max_pending),
        ]


def run(
    binary: str, port: int, workload: Workload, *, conns: int, duration: int, warmup: int, rate: float = 0.0
) -> dict:
    """One measured run; the JSON mcload prints, plus its exit status and stderr."""
    cmd = [
        binary,
        "-H",
        "127.0.0.1",
        "-p",
        str(port),
        "-c",
        str(conns),
        "-d",
        str(duration),
        "-w",
        str(warmup),
        *workload.args(),
    ]
    if rate:
        cmd += ["-R", f"{rate:g}"]
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=duration + warmup + 180, preexec_fn=raise_nofile_limit
    )
    result: dict = {"rc": proc.returncode, "stderr": proc.stderr.strip()[-2000:], "cmd": " ".join(cmd)}
    lines = proc.stdout.strip().splitlines()
    if lines:
        result |= json.loads(lines[-1])
    return result


def prefill(binary: str, port: int, workload: Workload) -> None:
    """Store every key once (through the target), so that gets are hits from the first request."""
    cmd = [binary, "-H", "127.0.0.1", "-p", str(port), "-P", *workload.args()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"prefill through port {port} failed: {proc.stdout} {proc.stderr}")


class IdleClients:
    """N connections that each answered one get and then stay open, idle, until closed."""

    def __init__(self, binary: str, port: int, workload: Workload, conns: int, timeout: float = 120.0):
        cmd = [binary, "-H", "127.0.0.1", "-p", str(port), "-c", str(conns), "-I", *workload.args()]
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=raise_nofile_limit,
        )
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if ready else ""
        if not line:
            self.close()
            raise RuntimeError(f"{conns} idle connections not up within {timeout}s: {self.proc.stderr.read()}")
        self.info = json.loads(line)

    def close(self) -> None:
        if self.proc.stdin and not self.proc.stdin.closed:
            self.proc.stdin.close()  # mcload exits on stdin EOF, closing every connection
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
