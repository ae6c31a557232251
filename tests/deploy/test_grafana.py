"""Grafana: provisioning is consistent and every dashboard query speaks the metrics contract."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from ._support import (
    DEPLOY, ROOT, allowed_labels, design_metrics, promql_refs, promtool_check_expressions,
    recording_rule_names, unknown_metrics,
)

GRAFANA = DEPLOY / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))


def datasources() -> dict[str, dict]:
    doc = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "datasources.yml").read_text())
    return {ds["uid"]: ds for ds in doc["datasources"]}


def walk_panels(panels: list[dict]):
    for panel in panels:
        yield panel
        yield from walk_panels(panel.get("panels", []))


def targets(dashboard: dict, ds_type: str) -> list[tuple[str, dict]]:
    found = []
    for panel in walk_panels(dashboard.get("panels", [])):
        for target in panel.get("targets", []):
            ds = target.get("datasource") or panel.get("datasource") or {}
            if ds.get("type") == ds_type:
                found.append((panel.get("title", "?"), target))
    return found


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def test_there_is_a_dashboard():
    assert DASHBOARDS, "no dashboard JSON in deploy/grafana/dashboards"


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_parses_and_is_well_formed(path):
    dashboard = load(path)
    assert dashboard["uid"] and dashboard["title"]
    ids = [p["id"] for p in walk_panels(dashboard["panels"])]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in walk_panels(dashboard["panels"]):
        if panel["type"] != "row":
            assert panel.get("targets"), f"panel {panel['title']!r} has no query"


def test_datasources_provisioned():
    sources = datasources()
    prom, ch = sources["prometheus"], sources["clickhouse"]
    assert prom["type"] == "prometheus" and prom["url"] == "http://prometheus:9090"
    assert ch["type"] == "grafana-clickhouse-datasource"
    assert ch["jsonData"]["host"] == "clickhouse" and ch["jsonData"]["port"] == 9000
    assert ch["jsonData"]["protocol"] == "native"
    assert ch["jsonData"]["defaultDatabase"] == "cx" and ch["jsonData"]["username"] == "bi"
    assert ch["secureJsonData"]["password"].startswith("$"), "password must come from the environment"


def test_dashboard_provider_points_at_the_mounted_folder():
    doc = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "dashboards.yml").read_text())
    assert doc["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_uses_only_provisioned_datasources(path):
    sources = datasources()
    for panel in walk_panels(load(path)["panels"]):
        for ds in [panel.get("datasource")] + [t.get("datasource") for t in panel.get("targets", [])]:
            if ds and ds.get("uid") not in (None, "-- Grafana --", "-- Mixed --"):
                assert ds["uid"] in sources, f"{panel['title']!r} uses unknown datasource {ds}"


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_promql_uses_only_contract_metrics_and_labels(path):
    dashboard = load(path)
    contract = design_metrics()
    recorded = recording_rule_names()
    labels_ok = allowed_labels(contract)
    problems = []
    exprs = [(title, t["expr"]) for title, t in targets(dashboard, "prometheus")]
    assert exprs, "dashboard has no Prometheus query"
    for title, expr in exprs:
        refs = promql_refs(expr)
        bad = unknown_metrics(refs.metrics, contract, recorded)
        if bad or not refs.metrics:
            problems.append(f"{title!r}: metrics not in docs/design.md: {sorted(bad) or 'none found'}")
        if refs.labels - labels_ok:
            problems.append(f"{title!r}: labels not in docs/design.md: {sorted(refs.labels - labels_ok)}")
    for var in dashboard.get("templating", {}).get("list", []):
        query = var.get("query")
        query = query.get("query", "") if isinstance(query, dict) else (query or "")
        m = re.fullmatch(r"label_values\((?:([a-zA-Z_:][\w:]*)\s*,\s*)?(\w+)\)", query.strip())
        if var.get("type") == "query":
            assert m, f"variable {var['name']}: unsupported query {query!r}"
            if m.group(1) and unknown_metrics({m.group(1)}, contract, recorded):
                problems.append(f"variable {var['name']}: unknown metric {m.group(1)}")
            if m.group(2) not in labels_ok:
                problems.append(f"variable {var['name']}: unknown label {m.group(2)}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_promql_is_valid_syntax(path, tmp_path):
    exprs = [t["expr"] for _, t in targets(load(path), "prometheus")]
    result = promtool_check_expressions(exprs, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dashboards_cover_the_whole_contract():
    contract = design_metrics()
    used: set[str] = set()
    for path in DASHBOARDS:
        for _, target in targets(load(path), "prometheus"):
            for name in promql_refs(target["expr"]).metrics:
                base = re.sub(r"_(bucket|sum|count)$", "", name)
                histogram = base in contract and contract[base].type == "histogram"
                used.add(base if histogram else name)
    missing = set(contract) - used
    assert not missing, f"metrics in docs/design.md with no dashboard panel: {sorted(missing)}"


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_clickhouse_queries_read_existing_tables_and_views(path):
    ddl = "\n".join(p.read_text() for p in sorted((ROOT / "schemas" / "clickhouse").glob("*.sql")))
    objects = set(re.findall(r"CREATE\s+(?:TABLE|VIEW|MATERIALIZED VIEW)\s+IF NOT EXISTS\s+\{database\}\.(\w+)", ddl))
    for title, target in targets(load(path), "grafana-clickhouse-datasource"):
        sql = target["rawSql"]
        assert "$__timeFilter(" in sql, f"{title!r}: query is not bounded by the dashboard time range"
        for table in re.findall(r"\bFROM\s+cx\.(\w+)", sql):
            assert table in objects, f"{title!r}: cx.{table} is not created by schemas/clickhouse"
