"""The side benches (the ring against twemproxy, TLS against plaintext) still start their stacks and
report: each runs once, briefly, with a handful of connections, and every request is answered.
They measure nothing here; this catches a harness that no longer starts (the numbers come from
the real runs in docs/benchmarks.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.timeout(180)


def test_ring_bench_drives_the_ring_and_twemproxy_without_errors() -> None:
    out = subprocess.run([sys.executable, "bench/ring.py", "--duration", "1", "--warmup", "0", "--conns", "20"],
                         cwd=REPO, capture_output=True, text=True, timeout=150)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    assert {row["target"] for row in rows} == {"twemproxy", "ring"}
    for row in rows:
        assert row["errors"] == 0 and row["misses"] == 0 and row["ops_per_sec"] > 0, row


def test_tls_bench_reports_both_ports() -> None:
    out = subprocess.run([sys.executable, "bench/tls.py", "--conns", "20", "--duration", "1", "--warmup", "0"],
                         cwd=REPO, capture_output=True, text=True, timeout=150)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.splitlines()
    assert any(line.startswith("plain ") for line in lines) and any(line.startswith("tls ") for line in lines)
    assert any(line.startswith("tls/plain: ops/s x") for line in lines), out.stdout
