"""The rule engine's alerts reach a real Alertmanager (Debian package) through its v2 API."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from pipeline.alerting import FIRING, RESOLVED, AlertEvent
from sinks.alertmanager import AlertmanagerPusher
from sinks.metrics import Metrics
from tests.integration.monitoring_servers import alertmanager, get_json
from touchpoint.harness import metric_value, wait_until



class _Notifications(ThreadingHTTPServer):
    """What Alertmanager's webhook receiver delivers: the notifications it sends downstream."""

    def __init__(self) -> None:
        self.received: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.received.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)

    def states(self, alert_id: str) -> list[str]:
        return [alert["status"] for message in self.received for alert in message["alerts"]
                if alert["labels"].get("alert_id") == alert_id]


def _config(webhook_url: str) -> dict:
    return {
        "route": {"receiver": "hook", "group_by": ["alertname", "channel"], "group_wait": "1s",
                  "group_interval": "1s", "repeat_interval": "1h"},
        "receivers": [{"name": "hook", "webhook_configs": [{"url": webhook_url, "send_resolved": True}]}],
    }


def _alert(state: str, at_ms: int, **subject: str) -> AlertEvent:
    kind = "customer" if subject.get("customer_key") else "channel"
    return AlertEvent(
        alert_id=f"id-{kind}", rule=f"{kind}_rule", severity="critical", state=state, subject_kind=kind,
        channel=subject.get("channel", ""), dimension=subject.get("dimension", ""),
        customer_key=subject.get("customer_key", ""), value=42.0, threshold=55.0, occurred_at_ms=at_ms,
        details="mean score 42 below 55 on call queue=billing (30 samples)")


def test_firing_then_resolved_alerts_reach_alertmanager(tmp_path: Path) -> None:
    now_ms = int(time.time() * 1000)
    metrics = Metrics.create()
    hook = _Notifications()
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    with hook, alertmanager(tmp_path / "am", _config(f"http://127.0.0.1:{hook.server_port}/")) as url:
        pusher = AlertmanagerPusher(url, metrics, resend_seconds=1.0)
        pusher.start()
        try:
            pusher.push([_alert(FIRING, now_ms - 5000, channel="call", dimension="billing"),
                         _alert(FIRING, now_ms - 5000, customer_key="c-synthetic-7")])

            def active() -> list[dict]:
                return [a for a in get_json(f"{url}/api/v2/alerts") if a["labels"].get("source") == "touchpoint"]

            wait_until(lambda: len(active()) == 2, timeout=20, interval=0.3, describe="two active alerts")
            by_kind = {a["labels"]["subject_kind"]: a for a in active()}
            channel = by_kind["channel"]
            assert channel["status"]["state"] == "active"
            assert channel["labels"] == {
                "alertname": "channel_rule", "severity": "critical", "subject_kind": "channel",
                "source": "touchpoint", "alert_id": "id-channel", "channel": "call", "dimension": "billing"}
            assert channel["startsAt"].startswith(time.strftime("%Y-%m-%dT", time.gmtime(now_ms / 1000)))
            assert "billing" in channel["annotations"]["description"]
            customer = by_kind["customer"]
            assert "c-synthetic-7" not in str(customer["labels"]) + str(customer["annotations"])

            time.sleep(2.5)  # re-sends keep the firing alerts alive without duplicates
            assert len(active()) == 2

            pusher.push([_alert(RESOLVED, now_ms, channel="call", dimension="billing")])
            # resolved alerts leave the v2 list at once (their endsAt has passed) ...
            wait_until(lambda: [a["labels"]["subject_kind"] for a in active()] == ["customer"], timeout=20,
                       interval=0.3, describe="the channel alert resolved")
            # ... and Alertmanager notifies the resolution downstream
            wait_until(lambda: "resolved" in hook.states("id-channel"), timeout=20, interval=0.3,
                       describe="a resolved notification")
            assert hook.states("id-channel")[0] == "firing"
            assert set(hook.states("id-customer")) == {"firing"}
        finally:
            hook.shutdown()
            pusher.stop()
    assert metric_value(_exposition(metrics), "cx_alertmanager_sent_total") >= 3
    assert metric_value(_exposition(metrics), "cx_alertmanager_dropped_total") == 0


def _exposition(metrics: Metrics) -> str:
    from prometheus_client import generate_latest

    return generate_latest(metrics.registry).decode()
