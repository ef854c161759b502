"""The operator's files (ops/): the alert rules pass `promtool check rules` and `promtool test rules`,
with a unit test for every alert, and every metric that the rules and the Grafana dashboard query is one
the service serves. promtool comes from Debian's `prometheus` package, which .ci/run installs."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

OPS = Path(__file__).resolve().parent.parent / "ops"
RULES = OPS / "prometheus" / "alerts.yml"
RULE_TESTS = OPS / "prometheus" / "alerts_test.yml"
DASHBOARD = OPS / "grafana" / "belvo-mfa.json"
METRIC = re.compile(r"\bmfa_[a-z_]+\b")


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail(
            "promtool is missing: `apt-get install prometheus` (Debian's package; .ci/run installs it)"
        )
    return subprocess.run([found, *args], cwd=RULES.parent, capture_output=True, text=True, timeout=120)


def test_the_rules_are_valid():
    done = promtool("check", "rules", RULES.name)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_alert_passes_its_unit_tests():
    done = promtool("test", "rules", RULE_TESTS.name)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_every_alert_has_a_unit_test():
    alerts = {
        r["alert"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"] if "alert" in r
    }
    tested = {
        case["alertname"]
        for test in yaml.safe_load(RULE_TESTS.read_text())["tests"]
        for case in test.get("alert_rule_test", [])
        if case["exp_alerts"]  # a test in which it fires, not only one in which it stays quiet
    }
    assert alerts and alerts == tested


def served_names(api) -> set[str]:
    """Every sample name /metrics may carry, families with no sample yet included."""
    text = api.request("GET", "/metrics", credential=None).text
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_count", "_sum"]}.get(family.type, [""])
        names |= {family.name + suffix for suffix in suffixes}
        names |= {sample.name for sample in family.samples}
    return names


def test_rules_and_dashboard_query_only_metrics_the_service_serves(api):
    served = served_names(api)
    rule_exprs = [r["expr"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]
    dashboard = json.loads(DASHBOARD.read_text())
    panel_exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    queried = {name for expr in rule_exprs + panel_exprs for name in METRIC.findall(expr)}
    assert queried and queried <= served, sorted(queried - served)


def test_the_dashboard_is_grafana_json_with_unique_panels():
    dashboard = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    assert dashboard["uid"] and dashboard["templating"]["list"][0]["type"] == "datasource"
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]
