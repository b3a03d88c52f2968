"""A real Prometheus (Debian's `prometheus` package) on 127.0.0.1, scraping given targets every second.

Started with its own config and TSDB in a temp dir, waited for by polling /-/ready, stopped by PID.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from tests.support.procs import Proc, free_port

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"


@dataclass(frozen=True)
class ScrapeTarget:
    address: str
    labels: Mapping[str, str]


def config(targets: Sequence[ScrapeTarget], rule_files: Sequence[Path]) -> dict:
    return {
        "global": {"scrape_interval": "1s", "scrape_timeout": "900ms", "evaluation_interval": "1s"},
        "rule_files": [str(path) for path in rule_files],
        "scrape_configs": [{
            "job_name": "cacheproxy",
            "static_configs": [{"targets": [t.address], "labels": dict(t.labels)} for t in targets],
        }],
    }


def start_prometheus(targets: Sequence[ScrapeTarget], rule_files: Sequence[Path] = ()) -> Proc:
    return start_prometheus_with(config(targets, rule_files))


def start_prometheus_with(settings: dict, binary: str = PROMETHEUS) -> Proc:
    """Prometheus BINARY with the config SETTINGS (a prometheus.yml as a dict), ready to answer queries."""
    workdir = Path(tempfile.mkdtemp(prefix="cacheproxy-prometheus-"))
    config_path = workdir / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(settings))
    port = free_port()
    address = f"127.0.0.1:{port}"
    with open(workdir / "prometheus.log", "wb") as log:  # the child keeps its own copy of the fd
        popen = subprocess.Popen(
            [binary, f"--config.file={config_path}", f"--storage.tsdb.path={workdir / 'data'}",
             f"--web.listen-address={address}", "--log.level=warn", "--storage.tsdb.retention.time=1h"],
            stdout=log, stderr=subprocess.STDOUT,
        )
    proc = Proc(popen, address, {"workdir": str(workdir), "log": str(workdir / "prometheus.log")})
    deadline = time.monotonic() + 30
    while True:
        if popen.poll() is not None:
            raise RuntimeError(f"prometheus exited: {Path(proc.extra['log']).read_text()}")
        try:
            with urllib.request.urlopen(f"http://{address}/-/ready", timeout=2) as response:
                if response.status == 200:
                    return proc
        except OSError:
            pass
        if time.monotonic() > deadline:
            proc.stop()
            raise RuntimeError("prometheus not ready within 30 s")
        time.sleep(0.1)


def api(prometheus: Proc, path: str, params: Mapping[str, str] | None = None) -> dict:
    query = f"?{urllib.parse.urlencode(params)}" if params else ""
    with urllib.request.urlopen(f"http://{prometheus.addr}/api/v1/{path}{query}", timeout=10) as response:
        body = json.load(response)
    assert body["status"] == "success", body
    return body["data"]


def query(prometheus: Proc, expr: str) -> list[dict]:
    return api(prometheus, "query", {"query": expr})["result"]


def finite_values(result: list[dict]) -> list[float]:
    values = [float(sample["value"][1]) for sample in result]
    return [v for v in values if math.isfinite(v)]


def without_data(prometheus: Proc, queries: Mapping[str, str], seconds: float) -> dict[str, str]:
    """The QUERIES (name -> PromQL) that still have no finite value after SECONDS; asked in whole
    rounds, a second apart, each query until it has one."""
    pending = dict(queries)
    deadline = time.monotonic() + seconds
    while pending and time.monotonic() < deadline:
        for name, expr in list(pending.items()):
            if finite_values(query(prometheus, expr)):
                del pending[name]
        if pending:
            time.sleep(1.0)  # between whole rounds of queries, bounded by the deadline
    return pending
