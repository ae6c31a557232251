"""Prometheus: config and rules are valid, unit-tested, and speak only the metrics contract."""

from __future__ import annotations

import re

import pytest
import yaml

from ._support import (
    DEPLOY, RUNBOOK_BASE, RUNBOOKS, alerting_rules, allowed_labels, design_metrics, github_anchor,
    load_rules, promql_refs, recording_rule_names, require_tool, run, unknown_metrics,
)

PROM = DEPLOY / "prometheus"
RULE_FILE = PROM / "rules" / "touchpoint.rules.yml"
TEST_FILE = PROM / "tests" / "touchpoint.rules.test.yml"

REQUIRED_ALERTS = {
    "CXChannelScoreLow", "CXCustomersAtRiskHigh", "CXCustomerAlertsSurge", "CXDeadLettersHigh",
    "CXSinkFailures", "CXConsumerLagHigh", "CXProcessingStalled", "CXWorkerDown",
    "CXDimensionScoreLow", "CXChannelErrorRateHigh", "CXChannelNPSLow", "CXAlertmanagerPushFailing",
}


def test_promtool_check_config():
    promtool = require_tool("promtool")
    result = run([promtool, "check", "config", "prometheus.yml"], cwd=PROM)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_check_rules():
    promtool = require_tool("promtool")
    result = run([promtool, "check", "rules", str(RULE_FILE)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_unit_tests_pass():
    promtool = require_tool("promtool")
    result = run([promtool, "test", "rules", str(TEST_FILE)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_scrape_config_discovers_workers_by_dns_and_alerts_alertmanager():
    config = yaml.safe_load((PROM / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    worker = jobs["touchpoint-worker"]
    assert "static_configs" not in worker, "workers must be discovered, so --scale worker=N works"
    dns = worker["dns_sd_configs"][0]
    assert dns["names"] == ["worker"] and dns["type"] == "A" and dns["port"] == 9108
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["alertmanager:9093"]
    assert config["rule_files"] == ["rules/*.yml"]


def test_required_alerts_exist():
    assert REQUIRED_ALERTS <= {r["alert"] for r in alerting_rules()}


@pytest.mark.parametrize("rule", alerting_rules(), ids=lambda r: r["alert"])
def test_alert_has_severity_annotations_and_runbook(rule):
    assert rule["labels"]["severity"] in ("critical", "warning")
    annotations = rule["annotations"]
    for key in ("summary", "description", "runbook_url"):
        assert annotations.get(key, "").strip(), f"{rule['alert']}: missing annotation {key}"
    assert annotations["runbook_url"] == f"{RUNBOOK_BASE}#{rule['alert'].lower()}"
    assert "for" in rule, f"{rule['alert']}: fires on a single evaluation; add a `for:`"


def test_every_runbook_url_has_a_section():
    anchors = {github_anchor(h) for h in re.findall(r"^#{2,3}\s+(.+)$", RUNBOOKS.read_text(), re.M)}
    missing = [r["alert"] for r in alerting_rules() if r["annotations"]["runbook_url"].split("#", 1)[1] not in anchors]
    assert not missing, f"docs/runbooks.md has no section for {missing}"


def test_rules_use_only_contract_metrics_and_labels():
    contract = design_metrics()
    recorded = recording_rule_names()
    labels_ok = allowed_labels(contract)
    problems = []
    for rule in load_rules():
        refs = promql_refs(rule["expr"])
        name = rule.get("alert") or rule.get("record")
        if not refs.metrics:
            problems.append(f"{name}: no metric found in expression")
        bad = unknown_metrics(refs.metrics, contract, recorded)
        if bad:
            problems.append(f"{name}: metrics not in docs/design.md: {sorted(bad)}")
        if refs.labels - labels_ok:
            problems.append(f"{name}: labels not in docs/design.md: {sorted(refs.labels - labels_ok)}")
    assert not problems, "\n".join(problems)


def test_recording_rule_names_follow_convention():
    for name in recording_rule_names():
        assert re.fullmatch(r"[a-z_]+:cx_[a-z_]+:[a-z0-9_]+", name), name


def test_every_alert_is_tested_firing_and_not_firing():
    tests = yaml.safe_load(TEST_FILE.read_text())["tests"]
    fired, quiet = set(), set()
    for case in tests:
        for check in case.get("alert_rule_test", []):
            (fired if check.get("exp_alerts") else quiet).add(check["alertname"])
    alerts = {r["alert"] for r in alerting_rules()}
    assert alerts - fired == set(), f"never tested firing: {sorted(alerts - fired)}"
    assert alerts - quiet == set(), f"never tested quiet: {sorted(alerts - quiet)}"
