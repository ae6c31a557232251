"""The shipped Prometheus rules against a live worker: a degraded channel fires, recovery resolves.

A real Prometheus (Debian package) scrapes a real worker on loopback. Its config is derived from
``deploy/prometheus/prometheus.yml`` (the worker job's service discovery replaced by the worker's
loopback port, 1 s scrape and evaluation intervals, no Alertmanager), and its rules are the
shipped ``deploy/prometheus/rules/*.yml`` with one change: every ``for:`` duration is rewritten
to 2 s, because production waits minutes before paging. The expressions are left identical, so
this tests the expressions and labels that production evaluates.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline.synthetic import Scenario, SyntheticMessage
from pipeline.wireformat import encode_json
from sinks.migrations import migrate
from tests.integration.monitoring_servers import get_json, prometheus
from touchpoint.generate import produce
from touchpoint.harness import WorkerProcess, metric_value, wait_until
from touchpoint.settings import Settings
from touchpoint.topics import ensure_topics

pytestmark = pytest.mark.integration

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
TEST_FOR = "2s"


def test_rules(rules_dir: Path = DEPLOY / "rules") -> dict[str, str]:
    """The shipped rule files with every ``for:`` shortened and nothing else changed."""
    rewritten = {}
    for path in sorted(rules_dir.glob("*.yml")):
        document = yaml.safe_load(path.read_text())
        for group in document["groups"]:
            for rule in group["rules"]:
                if "for" in rule:
                    rule["for"] = TEST_FOR
        rewritten[path.name] = yaml.safe_dump(document, sort_keys=False)
    return rewritten


test_rules.__test__ = False  # a helper, not a test


def test_config(worker_port: int) -> dict[str, Any]:
    """The shipped config with the worker job pointed at the live worker and short intervals."""
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    config.pop("alerting")  # no Alertmanager here: the alert states are read from Prometheus
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    worker_job = jobs["touchpoint-worker"]
    worker_job.pop("dns_sd_configs")
    worker_job["static_configs"] = [{"targets": [f"127.0.0.1:{worker_port}"]}]
    config["scrape_configs"] = [worker_job]
    return config


test_config.__test__ = False


def page_views(count: int, start_ms: int, attributes: dict[str, Any]) -> list[SyntheticMessage]:
    """Anonymous web page views with these attributes (synthetic ids), one per 100 ms."""
    messages = []
    for index in range(count):
        visitor = str(uuid.uuid4())
        at_ms = start_ms + index * 100
        record = {"event_id": f"pv-{uuid.uuid4().hex[:12]}", "occurred_at": at_ms, "channel": "web",
                  "type": "page_view", "identifiers": {"anonymous_id": visitor}, "attributes": attributes}
        messages.append(SyntheticMessage("web", visitor.encode(), encode_json(record), at_ms, True,
                                         record["event_id"]))
    return messages


def firing(url: str, alertname: str) -> list[dict]:
    alerts = get_json(f"{url}/api/v1/alerts")["data"]["alerts"]
    return [a for a in alerts if a["labels"]["alertname"] == alertname and a["state"] == "firing"]


def test_a_degraded_channel_fires_the_shipped_alert_and_recovery_resolves_it(settings: Settings,
                                                                              tmp_path: Path) -> None:
    migrate(settings.clickhouse)
    ensure_topics(settings)
    worker = WorkerProcess.start(settings, tmp_path / "worker.log")
    try:
        with prometheus(tmp_path / "prometheus", test_config(worker.metrics_port), test_rules()) as url:
            wait_until(lambda: _up(url), timeout=60, interval=0.5, describe="Prometheus scraping the worker")
            now_ms = int(time.time() * 1000)
            # 503s on slow pages: 85 - 25 (error) - 10 (slow) = 50 points each, below the rule's 55
            degraded = page_views(40, now_ms - 30_000, {"page": "/checkout", "error_code": 503, "load_ms": 12000})
            produce(Scenario(degraded, None), settings.kafka_bootstrap_servers, settings.topic_prefix)
            wait_until(lambda: metric_value(worker.scrape(), "cx_events_processed_total", {"channel": "web"}) >= 40,
                       timeout=120, interval=1, describe="the degraded traffic processed")
            wait_until(lambda: bool(firing(url, "CXChannelScoreLow")), timeout=60, interval=1,
                       describe="CXChannelScoreLow firing in Prometheus")
            (alert,) = firing(url, "CXChannelScoreLow")
            assert alert["labels"]["channel"] == "web"
            assert alert["labels"]["severity"] == "warning"
            assert float(alert["value"]) == pytest.approx(50.0)
            assert alert["annotations"]["runbook_url"].endswith("#cxchannelscorelow")

            # healthy pages (85 points) lift the window's mean to 71: the alert resolves
            healthy = page_views(60, now_ms - 20_000, {"page": "/home", "load_ms": 800})
            produce(Scenario(healthy, None), settings.kafka_bootstrap_servers, settings.topic_prefix)
            wait_until(lambda: metric_value(worker.scrape(), "cx_channel_score", {"channel": "web"})
                       == pytest.approx(71.0), timeout=120, interval=1, describe="the recovery traffic processed")
            wait_until(lambda: not firing(url, "CXChannelScoreLow"), timeout=60, interval=1,
                       describe="CXChannelScoreLow resolved")
    finally:
        assert worker.stop() == 0


def _up(url: str) -> bool:
    result = get_json(f"{url}/api/v1/query?query=up%7Bjob%3D%22touchpoint-worker%22%7D")["data"]["result"]
    return bool(result) and result[0]["value"][1] == "1"
