"""Alertmanager: valid config, severity routing, grouping and inhibitions that refer to real alerts."""

from __future__ import annotations

import re

import pytest
import yaml

from ._support import DEPLOY, alerting_rules, require_tool, run

AM = DEPLOY / "alertmanager"
CONFIG = AM / "alertmanager.yml"


def route_cases() -> list[tuple[str, list[str]]]:
    cases = []
    for line in (AM / "routes.cases").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            expected, *labels = line.split()
            cases.append((expected, labels))
    return cases


def resolve(labels: list[str]) -> str:
    amtool = require_tool("amtool")
    result = run([amtool, "config", "routes", "test", f"--config.file={CONFIG}", *labels])
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.strip()


def test_amtool_check_config():
    amtool = require_tool("amtool")
    result = run([amtool, "check-config", str(CONFIG)])
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("expected,labels", route_cases(), ids=lambda v: v if isinstance(v, str) else " ".join(v))
def test_route_cases(expected, labels):
    assert resolve(labels) == expected


@pytest.mark.parametrize("rule", alerting_rules(), ids=lambda r: r["alert"])
def test_each_shipped_alert_routes_by_its_severity(rule):
    severity = rule["labels"]["severity"]
    expected = {"critical": "pager", "warning": "team"}[severity]
    assert resolve([f"alertname={rule['alert']}", f"severity={severity}"]) == expected


def test_route_test_script_passes():
    require_tool("amtool")
    result = run(["bash", str(AM / "test-routes.sh")])
    assert result.returncode == 0, result.stdout + result.stderr


def test_grouping_and_repeat_intervals():
    route = yaml.safe_load(CONFIG.read_text())["route"]
    assert route["group_by"] == ["alertname", "channel"]

    def seconds(text: str) -> int:
        return sum(int(n) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[u] for n, u in re.findall(r"(\d+)([smhd])", text))

    for r in [route, *route["routes"]]:
        repeat = r.get("repeat_interval", route["repeat_interval"])
        assert 3600 <= seconds(repeat) <= 24 * 3600, f"repeat_interval {repeat} is not sane"


def test_receivers_are_placeholder_webhooks_on_localhost():
    receivers = {r["name"]: r for r in yaml.safe_load(CONFIG.read_text())["receivers"]}
    assert set(receivers) == {"pager", "team"}
    for receiver in receivers.values():
        for hook in receiver["webhook_configs"]:
            assert re.match(r"http://(127\.0\.0\.1|localhost)[:/]", hook["url"]), hook["url"]


def test_inhibit_rules_refer_to_shipped_alerts():
    alerts = {r["alert"] for r in alerting_rules()}
    inhibits = yaml.safe_load(CONFIG.read_text())["inhibit_rules"]
    named = set()
    for rule in inhibits:
        for matcher in rule["source_matchers"] + rule["target_matchers"]:
            m = re.fullmatch(r'alertname\s*(=~|=)\s*"([^"]+)"', matcher)
            if m:
                names = m.group(2).split("|") if m.group(1) == "=~" else [m.group(2)]
                named.update(names)
    assert named <= alerts, f"inhibit rules name unknown alerts: {sorted(named - alerts)}"
    worker_down = [r for r in inhibits if 'alertname="CXWorkerDown"' in r["source_matchers"]]
    assert worker_down and any("CXProcessingStalled" in m for m in worker_down[0]["target_matchers"])
