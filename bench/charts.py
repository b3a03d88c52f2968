#!/usr/bin/env python3
"""PNG charts from bench/run.py's results files (bench/results/bench-*.json).

Two charts, one line per target (direct, twemproxy, each proxy layout), one colour per target in
both:

* ``throughput.png``: answered requests per second against closed-loop connections (the median over
  repetitions; the bar spans the slowest and the fastest repetition).
* ``latency.png``: p99 latency against offered load. A fixed-rate run offers connections x rate
  requests per second (filled points, joined per target); a closed-loop run offers as many as the
  target answers, so its point sits at its measured ops/s (hollow, one marker shape per count).

    python bench/charts.py                                  # the newest results file -> docs/img
    python bench/charts.py bench/results/bench-A.json bench/results/bench-B.json --out docs/img
    python bench/run.py --charts docs/img ...               # the same, at the end of a run

Several files are merged scenario by scenario (a later file's scenario replaces an earlier one's of
the same name), so fixed-rate runs at different rates add points to one latency curve. Needs
matplotlib (the project's ``test`` extra); nothing else here imports it.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display

import matplotlib.pyplot as plt  # after choosing the backend
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "docs" / "img"
THROUGHPUT, LATENCY = "throughput.png", "latency.png"
PEERS = ("direct", "twemproxy", "mcproxy")  # drawn first, in grey tones, so the proxy layouts stand out
CLOSED_MARKERS = ("s", "^", "D", "v", "P", "X")
PEER_STYLE = {"direct": ("#444444", "--"), "twemproxy": ("#999999", "--"), "mcproxy": ("#777777", ":")}


@dataclass
class Point:
    scenario: str
    conns: int
    rate: float  # requests/s per connection; 0 for the closed loop
    ops_per_sec: float  # median over repetitions
    ops_low: float  # slowest repetition
    ops_high: float  # fastest repetition
    p99_ms: float | None

    @property
    def offered(self) -> float:
        """Requests per second offered: conns x rate, or (closed loop) whatever the target answered."""
        return self.conns * self.rate if self.rate else self.ops_per_sec


@dataclass
class Series:
    """Everything one results file (or several merged) says, per target."""

    targets: list[str] = field(default_factory=list)  # in the order they were given to run.py
    points: dict[str, list[Point]] = field(default_factory=dict)
    commands: list[str] = field(default_factory=list)
    cpus: int | None = None


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def series(records: list[dict]) -> Series:
    """Per target, one Point per scenario it completed, from run records (raw runs, not the markdown)."""
    scenarios: dict[str, tuple[dict, list[dict]]] = {}  # name -> (its definition, its runs)
    out = Series()
    for record in records:
        runs = record.get("runs") or []
        for name, definition in (record.get("scenarios") or {}).items():
            mine = [r for r in runs if r.get("scenario") == name]
            if mine:
                scenarios[name] = (definition, mine)
        for run in runs:
            if run.get("target") and run["target"] not in out.targets:
                out.targets.append(run["target"])
        if record.get("argv"):
            out.commands.append("python " + " ".join(record["argv"]))
        out.cpus = (record.get("machine") or {}).get("cpus", out.cpus)
    for target in out.targets:
        points = []
        for name, (definition, runs) in scenarios.items():
            ok = [r for r in runs if r.get("target") == target and r.get("ops_per_sec")]
            if not ok:
                continue
            ops = [float(r["ops_per_sec"]) for r in ok]
            p99 = _median([float(r["p99_us"]) / 1000 for r in ok if r.get("p99_us") is not None])
            points.append(
                Point(name, int(definition["conns"]), float(definition.get("rate") or 0.0),
                      float(statistics.median(ops)), min(ops), max(ops), p99)
            )
        if points:
            out.points[target] = points
    return out


def _colours(targets: list[str]) -> dict[str, tuple[str, str]]:
    """A fixed colour and line style per target: grey dashes for the peers, the palette for the rest."""
    palette = plt.get_cmap("tab10").colors
    own = [t for t in targets if t not in PEERS]
    styles = {t: PEER_STYLE[t] for t in targets if t in PEERS}
    styles |= {t: (matplotlib.colors.to_hex(palette[i % len(palette)]), "-") for i, t in enumerate(own)}
    return styles


def _ordered(targets: list[str]) -> list[str]:
    return [t for t in PEERS if t in targets] + [t for t in targets if t not in PEERS]


def _footer(fig: plt.Figure, data: Series) -> None:
    text = "; ".join(dict.fromkeys(data.commands)) or "bench/run.py"
    if data.cpus:
        text += f"  ({data.cpus} CPUs)"
    fig.text(0.01, 0.01, text, fontsize=6.5, color="#555555", ha="left", va="bottom", wrap=True)


def _thousands(value: float, _pos: object) -> str:
    return f"{value:,.0f}"


def throughput_chart(data: Series, path: Path) -> Path | None:
    """ops/s against closed-loop connections; None when no closed-loop run completed."""
    styles = _colours(data.targets)
    fig, ax = plt.subplots(figsize=(8, 5), dpi=120)
    drawn, ticks = False, set()
    for target in _ordered(list(data.points)):
        closed = sorted((p for p in data.points[target] if not p.rate), key=lambda p: p.conns)
        if not closed:
            continue
        colour, line = styles[target]
        xs = [p.conns for p in closed]
        ys = [p.ops_per_sec for p in closed]
        spread = [[p.ops_per_sec - p.ops_low for p in closed], [p.ops_high - p.ops_per_sec for p in closed]]
        ax.errorbar(xs, ys, yerr=spread, color=colour, linestyle=line, marker="o", capsize=3, label=target)
        ticks.update(xs)
        drawn = True
    if not drawn:
        plt.close(fig)
        return None
    if len(ticks) > 1 and max(ticks) / min(ticks) > 20:
        ax.set_xscale("log")
    ax.set_xticks(sorted(ticks))
    ax.xaxis.set_major_formatter(FuncFormatter(_thousands))
    ax.xaxis.set_minor_formatter(FuncFormatter(lambda *_: ""))
    ax.yaxis.set_major_formatter(FuncFormatter(_thousands))
    ax.set_ylim(bottom=0)
    ax.set_xlabel("client connections (closed loop: one request in flight each)")
    ax.set_ylabel("answered requests per second (median; bar: min-max over reps)")
    ax.set_title("Throughput against connections")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    _footer(fig, data)
    fig.savefig(path)
    plt.close(fig)
    return path


def latency_chart(data: Series, path: Path) -> Path | None:
    """p99 against offered load; None when no run recorded a p99.

    Fixed-rate points (filled) are joined into one curve per target. Closed-loop points are not
    joined (each connection count is a different load shape): hollow, one marker shape per count."""
    styles = _colours(data.targets)
    closed_conns = sorted({p.conns for ps in data.points.values() for p in ps if not p.rate})
    shapes = dict(zip(closed_conns, itertools.cycle(CLOSED_MARKERS), strict=False))
    fig, ax = plt.subplots(figsize=(8, 5), dpi=120)
    handles = []
    for target in _ordered(list(data.points)):
        points = [p for p in data.points[target] if p.p99_ms is not None]
        if not points:
            continue
        colour, line = styles[target]
        fixed = sorted((p for p in points if p.rate), key=lambda p: p.offered)
        if fixed:
            ax.plot([p.offered for p in fixed], [p.p99_ms for p in fixed], color=colour, linestyle=line,
                    marker="o")
        for p in points:
            if not p.rate:
                ax.plot(p.offered, p.p99_ms, marker=shapes[p.conns], color=colour, linestyle="none",
                        markerfacecolor="white", markeredgewidth=1.5, markersize=7)
        handles.append(Line2D([], [], color=colour, linestyle=line, marker="o", label=target))
    if not handles:
        plt.close(fig)
        return None
    handles += [Line2D([], [], color="black", marker=shape, markerfacecolor="white", linestyle="none",
                       label=f"closed loop, {conns:,} conns") for conns, shape in shapes.items()]
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(_thousands))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    ax.set_xlabel("offered load, requests/s (fixed rate: conns x rate; closed loop: what the target answered)")
    ax.set_ylabel("p99 latency, ms (median over reps)")
    ax.set_title("p99 latency against offered load")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(handles=handles, fontsize=8)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    _footer(fig, data)
    fig.savefig(path)
    plt.close(fig)
    return path


def draw(records: list[dict], out: Path) -> list[Path]:
    """Write OUT/throughput.png and OUT/latency.png from RECORDS; the paths written."""
    data = series(records)
    out.mkdir(parents=True, exist_ok=True)
    written = [throughput_chart(data, out / THROUGHPUT), latency_chart(data, out / LATENCY)]
    return [p for p in written if p is not None]


def newest_results() -> Path:
    found = sorted(RESULTS.glob("bench-*.json"))
    if not found:
        raise SystemExit(f"no results in {RESULTS}: run bench/run.py first, or name a results file")
    return found[-1]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results", nargs="*", type=Path, help="bench/run.py JSON files (default: the newest)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"folder for the PNGs (default {DEFAULT_OUT})")
    args = p.parse_args(argv)
    files = args.results or [newest_results()]
    written = draw([json.loads(f.read_text()) for f in files], args.out)
    if not written:
        print("charts: no completed runs in " + ", ".join(map(str, files)), file=sys.stderr)
        return 1
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
