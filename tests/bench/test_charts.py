"""bench/charts.py turns a bench/run.py results record into the two PNG charts.

The record is built here in run.py's shape (scenarios, raw runs per repetition); nothing is measured.
"""

from __future__ import annotations

import json
import struct
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import charts

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def run(target: str, scenario: str, rep: int, ops: float, p99_us: float) -> dict:
    return {"target": target, "scenario": scenario, "rep": rep, "ops_per_sec": ops, "p99_us": p99_us}


def record() -> dict:
    scenarios = {
        "closed-50": {"conns": 50, "rate": 0.0, "duration": 3},
        "closed-2000": {"conns": 2000, "rate": 0.0, "duration": 3},
        "rate-2000x0.5": {"conns": 2000, "rate": 0.5, "duration": 10},
    }
    runs = []
    for rep, scale in enumerate((1.0, 0.9, 1.1)):
        for target, ops in (("direct", 100_000), ("twemproxy", 70_000), ("batched", 72_000)):
            runs.append(run(target, "closed-50", rep, ops * scale, 900))
            runs.append(run(target, "closed-2000", rep, ops * 0.8 * scale, 40_000))
            runs.append(run(target, "rate-2000x0.5", rep, 1000, 300))
    runs.append({"target": "l1only", "scenario": "closed-50", "rep": 0, "rc": 1, "stderr": "refused"})
    return {"argv": ["bench/run.py", "--quick"], "machine": {"cpus": 2}, "scenarios": scenarios, "runs": runs}


def png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    return struct.unpack(">II", head[16:24])


def test_series_medians_spread_and_offered_load() -> None:
    data = charts.series([record()])
    assert data.targets == ["direct", "twemproxy", "batched", "l1only"]
    assert "l1only" not in data.points  # its only run failed: no point, no crash
    closed = {p.conns: p for p in data.points["batched"] if not p.rate}
    assert closed[50].ops_per_sec == pytest.approx(72_000)
    assert (closed[50].ops_low, closed[50].ops_high) == (pytest.approx(64_800), pytest.approx(79_200))
    fixed = next(p for p in data.points["batched"] if p.rate)
    assert fixed.offered == 1000  # 2,000 connections x 0.5 req/s
    assert closed[2000].offered == closed[2000].ops_per_sec  # a closed loop offers what it is answered
    assert fixed.p99_ms == pytest.approx(0.3)
    assert data.commands == ["python bench/run.py --quick"]


def test_a_later_file_replaces_a_scenario_and_adds_new_ones() -> None:
    later = record()
    later["scenarios"] = {"rate-2000x2": {"conns": 2000, "rate": 2.0, "duration": 10},
                          "closed-50": {"conns": 50, "rate": 0.0, "duration": 3}}
    later["runs"] = [run("batched", "rate-2000x2", 0, 4000, 500), run("batched", "closed-50", 0, 10, 1)]
    points = {p.scenario: p for p in charts.series([record(), later]).points["batched"]}
    assert set(points) == {"closed-50", "closed-2000", "rate-2000x0.5", "rate-2000x2"}
    assert points["closed-50"].ops_per_sec == 10
    assert points["rate-2000x2"].offered == 4000


def test_draw_writes_both_pngs(tmp_path: Path) -> None:
    written = charts.draw([record()], tmp_path / "img")
    assert [p.name for p in written] == ["throughput.png", "latency.png"]
    for path in written:
        width, height = png_size(path)
        assert (width, height) == (960, 600)


def test_the_command_line_reads_a_results_file(tmp_path: Path) -> None:
    results = tmp_path / "bench-20260101-000000.json"
    results.write_text(json.dumps(record()))
    assert charts.main([str(results), "--out", str(tmp_path / "img")]) == 0
    assert sorted(p.name for p in (tmp_path / "img").iterdir()) == ["latency.png", "throughput.png"]


def test_nothing_completed_draws_nothing(tmp_path: Path) -> None:
    empty = {"scenarios": {"closed-50": {"conns": 50, "rate": 0.0}}, "runs": []}
    assert charts.draw([empty], tmp_path) == []
    results = tmp_path / "bench-empty.json"
    results.write_text(json.dumps(empty))
    assert charts.main([str(results), "--out", str(tmp_path / "img")]) == 1
