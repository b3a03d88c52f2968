"""Medians over repetitions and the markdown tables (pure functions over the raw run records)."""

from __future__ import annotations

import statistics
from collections.abc import Iterable

TIMES, DASH = "\u00d7", "\u2013"  # multiplication sign, en dash
Run = dict  # one record: target, scenario, rep, mcload's JSON, cpu per role


def median(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def summarise(runs: list[Run], targets: list[str]) -> dict[str, dict[str, dict]]:
    """{scenario: {target: medians}} with each target's ops/s ratio to direct in the same scenario."""
    summary: dict[str, dict[str, dict]] = {}
    for scenario in dict.fromkeys(r["scenario"] for r in runs):
        rows: dict[str, dict] = {}
        for target in targets:
            mine = [r for r in runs if r["scenario"] == scenario and r["target"] == target]
            if not mine:
                continue
            ok = [r for r in mine if "ops_per_sec" in r]
            rows[target] = {
                "reps": len(mine),
                "failed_reps": len(mine) - len(ok),
                "ops_per_sec": median(r["ops_per_sec"] for r in ok),
                "proxy_cpu_us": median(r.get("proxy_cpu_us") for r in ok),
                "memcached_cpu_us": median(r.get("memcached_cpu_us") for r in ok),
                "p50_us": median(r["p50_us"] for r in ok),
                "p99_us": median(r["p99_us"] for r in ok),
                "p999_us": median(r["p999_us"] for r in ok),
                "errors": sum(r.get("errors", 0) + r.get("disconnects", 0) for r in ok),
                "connect_s": median(r.get("connect_s") for r in ok),
                "memcached_conns": median(r.get("memcached_conns_max") for r in ok),
                "foreign_cpu_cores": median(r.get("foreign_cpu_cores") for r in ok),
            }
        direct = rows.get("direct", {}).get("ops_per_sec")
        for target, row in rows.items():
            ops = row["ops_per_sec"]
            row["x_direct"] = ops / direct if ops is not None and direct else None
            row["x_twemproxy"] = paired_ratio(runs, scenario, target, "twemproxy")
        summary[scenario] = rows
    return summary


def paired_ratio(runs: list[Run], scenario: str, target: str, peer: str) -> float | None:
    """The median over repetitions of TARGET's ops/s divided by PEER's *in the same repetition*.
    Targets run interleaved, so a repetition's pair shares the machine's state of the moment: on a
    noisy host this is steadier than a ratio of medians (which may come from different moments)."""
    def by_rep(name: str) -> dict[int, float]:
        return {r["rep"]: r["ops_per_sec"] for r in runs
                if r["scenario"] == scenario and r["target"] == name and r.get("ops_per_sec")}

    mine, theirs = by_rep(target), by_rep(peer)
    return median(mine[rep] / theirs[rep] for rep in mine if rep in theirs)


def summarise_idle(idle: list[dict], targets: list[str]) -> dict[str, dict]:
    rows = {}
    for target in targets:
        mine = [r for r in idle if r["target"] == target and "front_mib_per_1k" in r]
        if mine:
            rows[target] = {
                "front_mib_per_1k": median(r["front_mib_per_1k"] for r in mine),
                "memcached_mib_per_1k": median(r["memcached_mib_per_1k"] for r in mine),
                "conns": mine[0]["conns"],
                "reps": len(mine),
            }
    return rows


def fmt(value: float | None, spec: str, scale: float = 1.0) -> str:
    return DASH if value is None else format(value * scale, spec)


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def closed_loop_table(rows: dict[str, dict], idle: dict[str, dict]) -> str:
    header = [
        "target",
        "ops/s",
        f"{TIMES} direct",
        f"{TIMES} twemproxy (paired)",
        "proxy CPU µs/req",
        "memcached CPU µs/req",
        "p50 ms",
        "p99 ms",
        "MiB per 1k idle conns",
        "memcached conns",
        "errors",
    ]
    body = []
    for target, row in rows.items():
        front = idle.get(target, {}).get("front_mib_per_1k")
        failed = f" ({row['failed_reps']} of {row['reps']} reps failed)" if row["failed_reps"] else ""
        body.append(
            [
                target,
                fmt(row["ops_per_sec"], ",.0f"),
                fmt(row["x_direct"], ".2f"),
                fmt(row.get("x_twemproxy"), ".2f"),
                fmt(row["proxy_cpu_us"], ".1f"),
                fmt(row["memcached_cpu_us"], ".1f"),
                fmt(row["p50_us"], ".2f", 1e-3),
                fmt(row["p99_us"], ".2f", 1e-3),
                fmt(front, ".2f"),
                fmt(row["memcached_conns"], ",.0f"),
                f"{row['errors']}{failed}",
            ]
        )
    return table(header, body)


def rate_table(rows: dict[str, dict]) -> str:
    header = [
        "target",
        "ops/s",
        "p50 ms",
        "p99 ms",
        "p99.9 ms",
        "proxy CPU µs/req",
        "memcached CPU µs/req",
        "errors",
    ]
    body = [
        [
            target,
            fmt(row["ops_per_sec"], ",.0f"),
            fmt(row["p50_us"], ".2f", 1e-3),
            fmt(row["p99_us"], ".2f", 1e-3),
            fmt(row["p999_us"], ".2f", 1e-3),
            fmt(row["proxy_cpu_us"], ".1f"),
            fmt(row["memcached_cpu_us"], ".1f"),
            str(row["errors"]),
        ]
        for target, row in rows.items()
    ]
    return table(header, body)


def idle_table(rows: dict[str, dict]) -> str:
    header = ["target", "idle conns", "target MiB per 1k", "its memcached MiB per 1k"]
    body = [
        [
            target,
            str(row["conns"]),
            fmt(row["front_mib_per_1k"], ".2f"),
            fmt(row["memcached_mib_per_1k"], ".2f") if target != "direct" else "(same process)",
        ]
        for target, row in rows.items()
    ]
    return table(header, body)


def markdown(summary: dict[str, dict[str, dict]], idle: dict[str, dict], scenarios: dict[str, dict]) -> str:
    parts = []
    for name, rows in summary.items():
        sc = scenarios[name]
        if sc["rate"]:
            title = (
                f"### Fixed rate: {sc['conns']:,} connections {TIMES} {sc['rate']:g} req/s each "
                f"({sc['duration']} s, medians of reps)"
            )
            parts += [title, "", rate_table(rows), ""]
        else:
            title = (
                f"### Closed loop: {sc['conns']:,} connections, one request in flight each "
                f"({sc['duration']} s, medians of reps)"
            )
            parts += [title, "", closed_loop_table(rows, idle), ""]
    if idle:
        parts += ["### Memory per idle connection (RSS delta, fresh processes)", "", idle_table(idle), ""]
    noisy = sorted(
        {t for rows in summary.values() for t, row in rows.items() if (row.get("foreign_cpu_cores") or 0) > 0.1}
    )
    if noisy:
        parts += [
            f"**Warning**: other processes used > 0.1 core during the runs of {', '.join(noisy)}: "
            "the machine was not quiet; figures are noisy.",
            "",
        ]
    goals = goals_table(summary, idle, scenarios)
    if goals:
        parts += ["### Performance targets", "", goals, ""]
    return "\n".join(parts)


def goals_table(summary: dict[str, dict[str, dict]], idle: dict[str, dict], scenarios: dict[str, dict]) -> str:
    """The proxy's performance targets (docs/benchmarks.md) for each proxy target, at the largest
    closed-loop and the fixed-rate scenario."""
    closed = [n for n, sc in scenarios.items() if not sc["rate"] and n in summary]
    rate = [n for n, sc in scenarios.items() if sc["rate"] and n in summary]
    if not closed:
        return ""
    big = max(closed, key=lambda n: scenarios[n]["conns"])
    rows = summary[big]

    def check(value: float | None, ok: bool) -> str:
        return DASH if value is None else ("met" if ok else "NOT met")

    header = [
        "proxy target",
        f"ops/s >= twemproxy @ {scenarios[big]['conns']:,} (paired)",
        "<= 20 µs CPU/req",
        "<= 2 MiB per 1k idle",
        "p99 <= 1 ms at fixed rate",
    ]
    body = []
    for target, row in rows.items():
        if target in ("direct", "twemproxy") or target.startswith("mcproxy"):
            continue  # the systems the proxy is compared with
        ratio, cpu = row.get("x_twemproxy"), row["proxy_cpu_us"]
        mib = idle.get(target, {}).get("front_mib_per_1k")
        p99 = summary[rate[0]].get(target, {}).get("p99_us") if rate else None
        body.append(
            [
                target,
                check(ratio, ratio is not None and ratio >= 1),
                check(cpu, cpu is not None and cpu <= 20),
                check(mib, mib is not None and mib <= 2),
                check(p99, p99 is not None and p99 <= 1000),
            ]
        )
    return table(header, body) if body else ""
