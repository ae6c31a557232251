"""Alertmanager payloads carry no customer identifier; the queue is bounded and never blocks."""

from __future__ import annotations

import time

import pytest
from prometheus_client import generate_latest

from pipeline.alerting import FIRING, RESOLVED, AlertEvent
from sinks.alertmanager import AlertmanagerPusher, alert_payload, rfc3339
from sinks.metrics import Metrics
from touchpoint.harness import metric_value
from touchpoint.localstack import free_port

T0 = 1_700_000_000_000


def alert(state: str = FIRING, alert_id: str = "a-1", customer_key: str = "", channel: str = "call",
          dimension: str = "", at_ms: int = T0) -> AlertEvent:
    return AlertEvent(alert_id, "some_rule", "warning", state, "customer" if customer_key else "channel", channel,
                      dimension, customer_key, 30.0, 40.0, at_ms, "rolling score 30 below 40")


def exposition(metrics: Metrics) -> str:
    return generate_latest(metrics.registry).decode()


def test_rfc3339_in_utc_with_milliseconds() -> None:
    assert rfc3339(T0 + 123) == "2023-11-14T22:13:20.123Z"


@pytest.mark.parametrize("given, expected_labels", [
    (alert(channel="call", dimension="billing"),
     {"alertname": "some_rule", "severity": "warning", "subject_kind": "channel", "source": "touchpoint",
      "alert_id": "a-1", "channel": "call", "dimension": "billing"}),
    (alert(channel="web"),
     {"alertname": "some_rule", "severity": "warning", "subject_kind": "channel", "source": "touchpoint",
      "alert_id": "a-1", "channel": "web"}),
    (alert(customer_key="c-synthetic-1", channel=""),
     {"alertname": "some_rule", "severity": "warning", "subject_kind": "customer", "source": "touchpoint",
      "alert_id": "a-1"}),
])
def test_labels_are_bounded_and_never_name_the_customer(given: AlertEvent, expected_labels: dict) -> None:
    payload = alert_payload(given, given.occurred_at_ms)
    assert payload["labels"] == expected_labels
    assert "c-synthetic-1" not in repr(payload)
    assert set(payload["annotations"]) == {"summary", "description", "runbook_url"}


def test_firing_has_no_end_and_a_resolution_ends_at_its_time() -> None:
    assert "endsAt" not in alert_payload(alert(FIRING), T0)
    resolved = alert_payload(alert(RESOLVED, at_ms=T0 + 60_000), T0)
    assert (resolved["startsAt"], resolved["endsAt"]) == (rfc3339(T0), rfc3339(T0 + 60_000))
    late = alert_payload(alert(RESOLVED, at_ms=T0), T0 + 5_000)  # never ends before it started
    assert late["endsAt"] == late["startsAt"]


def test_a_full_queue_drops_the_oldest_and_counts_it() -> None:
    metrics = Metrics.create()
    pusher = AlertmanagerPusher("http://127.0.0.1:9", metrics, queue_size=3)  # not started: nothing drains
    pusher.push([alert(alert_id=f"a-{i}") for i in range(5)])
    assert pusher.queued == 3
    assert [a.alert_id for a in pusher._queue] == ["a-2", "a-3", "a-4"]
    assert metric_value(exposition(metrics), "cx_alertmanager_dropped_total", {"reason": "queue_full"}) == 2


def test_an_unreachable_alertmanager_is_retried_off_the_hot_path_then_counted() -> None:
    metrics = Metrics.create()
    pusher = AlertmanagerPusher(f"http://127.0.0.1:{free_port()}", metrics, max_attempts=3,
                                backoff_seconds=0.01, timeout_seconds=0.5)
    pusher.start()
    try:
        started = time.monotonic()
        pusher.push([alert(), alert(alert_id="a-2")])
        assert time.monotonic() - started < 0.05  # push only queues
        deadline = time.monotonic() + 10
        while metric_value(exposition(metrics), "cx_alertmanager_dropped_total") < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        pusher.stop()
    text = exposition(metrics)
    assert metric_value(text, "cx_alertmanager_failures_total") == 3
    assert metric_value(text, "cx_alertmanager_dropped_total", {"reason": "retries_exhausted"}) == 2
    assert metric_value(text, "cx_alertmanager_sent_total") == 0
