"""Pushing the rule engine's alerts to Alertmanager's v2 API, off the hot path.

The worker calls :meth:`AlertmanagerPusher.push` with the alert transitions it already writes to
``touchpoints.alerts``; the call only appends to a bounded queue (when full, the oldest entry is
dropped and counted in ``cx_alertmanager_dropped_total{reason="queue_full"}``), and a background
thread POSTs batches to ``/api/v2/alerts`` with capped exponential backoff.

Alertmanager forgets an alert that is not re-sent within its ``resolve_timeout``, as Prometheus
re-sends every evaluation. The pusher therefore re-sends every firing alert it knows every
``resend_seconds`` until its resolution arrives, which it sends with ``endsAt`` so Alertmanager
resolves it at once.

Labels are bounded and never name a customer: ``alertname`` (the rule), ``severity``,
``subject_kind``, ``channel`` and ``dimension`` (for channel alerts), ``source="touchpoint"`` and
``alert_id``, the opaque, deterministic id that keeps two customers' alerts of one rule apart and
finds the full record in ClickHouse ``alerts`` (which holds the customer key) for those allowed
to see it.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections import OrderedDict, deque
from datetime import datetime, timezone
from typing import Any, Iterable

from pipeline.alerting import FIRING, AlertEvent
from sinks.metrics import Metrics

log = logging.getLogger(__name__)

Payload = dict[str, Any]
RUNBOOK_URL = "https://github.com/touchpoint-cx/touchpoint/blob/main/docs/runbooks.md#touchpoint-rule-alerts"


def rfc3339(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def alert_labels(alert: AlertEvent) -> dict[str, str]:
    """The identity of the alert in Alertmanager: bounded values and the opaque alert id only."""
    labels = {
        "alertname": alert.rule,
        "severity": alert.severity,
        "subject_kind": alert.subject_kind,
        "source": "touchpoint",
        "alert_id": alert.alert_id,
    }
    if alert.channel:
        labels["channel"] = alert.channel
    if alert.dimension:
        labels["dimension"] = alert.dimension
    return labels


def alert_payload(alert: AlertEvent, starts_at_ms: int) -> Payload:
    """One entry of the v2 ``postableAlerts`` list; a resolution carries ``endsAt``."""
    where = f" on {alert.channel}" + (f" {alert.dimension}" if alert.dimension else "") if alert.channel else ""
    payload: Payload = {
        "labels": alert_labels(alert),
        "annotations": {
            "summary": f"{alert.rule}{where} ({alert.subject_kind})",
            "description": alert.details,
            "runbook_url": RUNBOOK_URL,
        },
        "startsAt": rfc3339(starts_at_ms),
    }
    if alert.state != FIRING:
        payload["endsAt"] = rfc3339(max(alert.occurred_at_ms, starts_at_ms))
    return payload


class AlertmanagerPusher:
    """A bounded queue and one sender thread; ``push`` never blocks on the network."""

    def __init__(self, url: str, metrics: Metrics, *, queue_size: int = 1000, batch_size: int = 100,
                 max_attempts: int = 5, backoff_seconds: float = 0.5, max_backoff_seconds: float = 30.0,
                 timeout_seconds: float = 5.0, resend_seconds: float = 60.0, max_active: int = 10_000) -> None:
        self.endpoint = url.rstrip("/") + "/api/v2/alerts"
        self.metrics = metrics
        self.queue_size = queue_size
        self.batch_size = batch_size
        self.max_attempts = max_attempts
        self.backoff_seconds = backoff_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self.timeout_seconds = timeout_seconds
        self.resend_seconds = resend_seconds
        self.max_active = max_active
        self._queue: deque[AlertEvent] = deque()
        self._active: OrderedDict[str, Payload] = OrderedDict()  # firing alerts, for re-sends
        self._wake = threading.Condition()
        self._stopping = False
        self._stopped = threading.Event()  # cuts a retry backoff short on stop
        self._thread: threading.Thread | None = None

    # -- the hot path --------------------------------------------------------------------------

    def push(self, alerts: Iterable[AlertEvent]) -> None:
        """Queue alert transitions for sending; drops (and counts) the oldest when full."""
        with self._wake:
            for alert in alerts:
                if len(self._queue) >= self.queue_size:
                    self._queue.popleft()
                    self.metrics.alertmanager_dropped.labels("queue_full").inc()
                self._queue.append(alert)
            self._wake.notify()

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="alertmanager-push", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Send what is queued (one attempt each), then stop the thread."""
        with self._wake:
            self._stopping = True
            self._wake.notify()
        self._stopped.set()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def queued(self) -> int:
        return len(self._queue)

    # -- the sender thread -----------------------------------------------------------------------

    def _run(self) -> None:
        next_resend = time.monotonic() + self.resend_seconds
        while True:
            with self._wake:
                if not self._queue and not self._stopping:
                    self._wake.wait(max(0.0, next_resend - time.monotonic()))
                stopping = self._stopping
                batch = [self._queue.popleft() for _ in range(min(self.batch_size, len(self._queue)))]
            if batch:
                self._send(self._payloads(batch), attempts=1 if stopping else self.max_attempts)
            elif stopping:
                return
            if time.monotonic() >= next_resend:
                active = list(self._active.values())
                for start in range(0, 0 if stopping else len(active), self.batch_size):
                    # one attempt: the next re-send is the retry, and a failed one drops nothing
                    self._send(active[start:start + self.batch_size], attempts=1, drop_reason=None)
                next_resend = time.monotonic() + self.resend_seconds

    def _payloads(self, batch: list[AlertEvent]) -> list[Payload]:
        """Payloads for a batch; remembers firing alerts and forgets resolved ones."""
        payloads = []
        for alert in batch:
            if alert.state == FIRING:
                payload = alert_payload(alert, alert.occurred_at_ms)
                self._active[alert.alert_id] = payload
                self._active.move_to_end(alert.alert_id)
                while len(self._active) > self.max_active:  # Alertmanager expires the oldest
                    self._active.popitem(last=False)
            else:
                firing = self._active.pop(alert.alert_id, None)
                starts = _parse_ms(firing["startsAt"]) if firing else alert.occurred_at_ms
                payload = alert_payload(alert, starts)
            payloads.append(payload)
        return payloads

    def _send(self, payloads: list[Payload], attempts: int, drop_reason: str | None = "retries_exhausted") -> None:
        """POST with capped exponential backoff; what cannot be sent is counted as dropped."""
        body = json.dumps(payloads).encode()
        for attempt in range(1, attempts + 1):
            request = urllib.request.Request(self.endpoint, data=body, method="POST",
                                             headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_seconds):
                    pass
                self.metrics.alertmanager_sent.inc(len(payloads))
                return
            except urllib.error.HTTPError as exc:
                self.metrics.alertmanager_failures.inc()
                if 400 <= exc.code < 500:  # the payload is wrong: retrying cannot help
                    log.error("alertmanager refused %d alerts: HTTP %d", len(payloads), exc.code)
                    self.metrics.alertmanager_dropped.labels("rejected").inc(len(payloads))
                    return
                log.warning("alertmanager push failed: HTTP %d (attempt %d)", exc.code, attempt)
            except (OSError, urllib.error.URLError) as exc:
                self.metrics.alertmanager_failures.inc()
                log.warning("alertmanager push failed: %s (attempt %d)", exc, attempt)
            if attempt < attempts and not self._stopped.wait(
                    min(self.max_backoff_seconds, self.backoff_seconds * 2 ** (attempt - 1))):
                continue
            if attempt < attempts:  # stopping: one attempt was all there was time for
                break
        if drop_reason is not None:
            self.metrics.alertmanager_dropped.labels(drop_reason).inc(len(payloads))


def _parse_ms(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def pusher_for(url: str, metrics: Metrics) -> AlertmanagerPusher | None:
    """The pusher for the ``alertmanager_url`` setting, started; None when it is empty."""
    if not url:
        return None
    pusher = AlertmanagerPusher(url, metrics)
    pusher.start()
    return pusher
