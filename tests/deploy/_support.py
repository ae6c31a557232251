"""Helpers for the deployment tests: the metrics contract, PromQL scanning, external tools."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DESIGN = ROOT / "docs" / "design.md"
RUNBOOKS = ROOT / "docs" / "runbooks.md"
RULES = DEPLOY / "prometheus" / "rules" / "touchpoint.rules.yml"
RUNBOOK_BASE = "https://github.com/touchpoint-cx/touchpoint/blob/main/docs/runbooks.md"

# Series Prometheus makes itself; any rule or dashboard may use them.
PROMETHEUS_BUILTINS = {"up", "ALERTS", "ALERTS_FOR_STATE"}
# Labels Prometheus attaches or histograms carry, on top of the contract's own labels.
PROMETHEUS_LABELS = {"job", "instance", "le", "alertname", "alertstate", "__name__"}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")

TOOL_PACKAGES = {
    "promtool": "Debian package prometheus",
    "amtool": "Debian package prometheus-alertmanager",
    "docker-compose": "Debian package docker-compose",
}


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def require_tool(name: str) -> str:
    """Path of an external tool. Missing: skip on a developer machine, fail in CI (which installs it)."""
    path = shutil.which(name)
    if path:
        return path
    reason = f"{name} is not installed ({TOOL_PACKAGES.get(name, 'see .ci')})"
    if in_ci():
        pytest.fail(f"{reason}; CI must install it", pytrace=False)
    pytest.skip(reason)


def run(cmd: list[str], cwd: Path = ROOT, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)


@dataclass(frozen=True)
class MetricSpec:
    name: str
    type: str
    labels: frozenset[str]


def design_metrics() -> dict[str, MetricSpec]:
    """The Metrics table of docs/design.md: | `name` | type | label, label |."""
    text = DESIGN.read_text()
    section = text.split("## Metrics", 1)[1]
    specs: dict[str, MetricSpec] = {}
    for line in section.splitlines():
        m = re.match(r"^\|\s*`([a-zA-Z_:][a-zA-Z0-9_:]*)`\s*\|\s*(\w+)\s*\|([^|]*)\|", line)
        if m:
            labels = frozenset(x.strip() for x in m.group(3).split(",") if x.strip())
            specs[m.group(1)] = MetricSpec(m.group(1), m.group(2), labels)
    assert specs, "no metrics table found in docs/design.md"
    return specs


def load_rules() -> list[dict]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def recording_rule_names() -> set[str]:
    return {r["record"] for r in load_rules() if "record" in r}


def alerting_rules() -> list[dict]:
    return [r for r in load_rules() if "alert" in r]


# --- PromQL scanning -----------------------------------------------------------------------------
# Not a full parser: enough to list the series names and label names an expression uses.
# Syntax itself is checked by promtool (see test_grafana.py and test_prometheus.py).

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{([^}]*)\}")
_MATCHER_LABEL = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_RANGE = re.compile(r"\[[^\]]*\]")
_OFFSET = re.compile(r"\boffset\s+-?[0-9a-zA-Z]+")
_NUMBER = re.compile(r"(?<![a-zA-Z_:])(?:0x[0-9a-fA-F]+|\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+)")
_IDENT = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_KEYWORDS = {"and", "or", "unless", "bool", "by", "without", "on", "ignoring", "group_left",
             "group_right", "offset", "atan2", "inf", "nan", "Inf", "NaN"}
GRAFANA_INTERVALS = re.compile(r"\$__(?:rate_interval|interval|range)\b|\$\{__(?:rate_interval|interval|range)\}")


def grafana_to_promql(expr: str) -> str:
    """Replace Grafana's interval macros by a fixed duration so promtool can parse the query."""
    return GRAFANA_INTERVALS.sub("5m", expr)


@dataclass(frozen=True)
class PromqlRefs:
    metrics: frozenset[str]
    labels: frozenset[str]


def promql_refs(expr: str) -> PromqlRefs:
    text = _STRING.sub('""', grafana_to_promql(expr))
    labels: set[str] = set()
    metrics: set[str] = set()
    for body in _MATCHERS.findall(text):
        labels.update(_MATCHER_LABEL.findall(body))
        # {__name__="x"} selects a metric by name
    for m in re.finditer(r'__name__\s*=\s*"([^"]*)"', grafana_to_promql(expr)):
        metrics.add(m.group(1))
    text = _MATCHERS.sub(" ", text)
    for _, body in _GROUPING.findall(text):
        labels.update(x.strip() for x in body.split(",") if x.strip())
    text = _GROUPING.sub(" ", text)
    text = _RANGE.sub(" ", text)
    text = _OFFSET.sub(" ", text)
    text = _NUMBER.sub(" ", text)
    for m in _IDENT.finditer(text):
        word = m.group(0)
        rest = text[m.end():].lstrip()
        if word in _KEYWORDS or rest.startswith("("):
            continue  # operator keyword, or a function / aggregation call
        metrics.add(word)
    return PromqlRefs(frozenset(metrics), frozenset(labels))


def unknown_metrics(names: set[str] | frozenset[str], contract: dict[str, MetricSpec], recorded: set[str]) -> set[str]:
    """Names that are neither in the contract (with histogram suffixes), recorded, nor built in."""
    unknown = set()
    for name in names:
        if name in contract or name in recorded or name in PROMETHEUS_BUILTINS:
            continue
        base = next((name[: -len(s)] for s in HISTOGRAM_SUFFIXES if name.endswith(s)), None)
        if base and base in contract and contract[base].type == "histogram":
            continue
        unknown.add(name)
    return unknown


def allowed_labels(contract: dict[str, MetricSpec]) -> set[str]:
    labels = set(PROMETHEUS_LABELS)
    for spec in contract.values():
        labels |= spec.labels
    return labels


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading."""
    slug = heading.strip().lower()
    slug = re.sub(r"[^\w\- ]", "", slug)
    return slug.replace(" ", "-")


def promtool_check_expressions(exprs: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    """Validate PromQL expressions with promtool by wrapping them as recording rules."""
    promtool = require_tool("promtool")
    rules = {"groups": [{"name": "expressions", "rules": [
        {"record": f"check:expr_{i}", "expr": grafana_to_promql(e)} for i, e in enumerate(exprs)
    ]}]}
    path = tmp_path / "expressions.rules.yml"
    path.write_text(yaml.safe_dump(rules, sort_keys=False))
    return run([promtool, "check", "rules", str(path)])
