"""The alert rules pass promtool's checker and its unit tests, and every alert is covered and documented."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from tests.monitoring.prometheus import PROMTOOL

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "charts" / "cacheproxy" / "alerts" / "cacheproxy-rules.yaml"
UNIT_TESTS = Path(__file__).resolve().parent / "alerts-test.yaml"
REQUIRED_ALERTS = {"CacheProxyDown", "CacheProxyBackendUnreachable", "CacheProxyHighErrorRatio",
                   "CacheProxyHitRatioDrop", "CacheProxyHighLatencyP99", "CacheProxyConnectionSaturation"}


def alerts() -> list[dict]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]
            if "alert" in rule]


def test_promtool_check_rules() -> None:
    result = subprocess.run([PROMTOOL, "check", "rules", str(RULES)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alerts())} rules found" in result.stdout


def test_promtool_unit_tests_pass() -> None:
    result = subprocess.run([PROMTOOL, "test", "rules", UNIT_TESTS.name], capture_output=True, text=True,
                            timeout=120, cwd=UNIT_TESTS.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_is_unit_tested_firing_and_silent() -> None:
    cases = yaml.safe_load(UNIT_TESTS.read_text())["tests"]
    checks = [check for case in cases for check in case["alert_rule_test"]]
    for name in {rule["alert"] for rule in alerts()}:
        mine = [check for check in checks if check["alertname"] == name]
        assert any(check["exp_alerts"] for check in mine), f"{name} never expected to fire"
        assert any(not check["exp_alerts"] for check in mine), f"{name} never expected to stay silent"


def test_the_required_alerts_exist_with_runbooks() -> None:
    by_name = {rule["alert"]: rule for rule in alerts()}
    assert set(by_name) >= REQUIRED_ALERTS
    monitoring_doc = (REPO / "docs" / "monitoring.md").read_text()
    for name, rule in by_name.items():
        annotations = rule["annotations"]
        assert rule["labels"]["severity"] in {"critical", "warning"}
        assert "Runbook:" in annotations["description"], name
        assert annotations["runbook"] == f"docs/monitoring.md#{name.lower()}"
        assert f"### {name}" in monitoring_doc, f"docs/monitoring.md lacks a runbook section for {name}"
