"""Every Prometheus metric Touchpoint exposes, built by one factory that takes a registry.

Tests build a fresh registry each; the worker serves the process-wide one. Labels are bounded by
construction (channels, reasons, rules, severities, tables, outcomes, topics): a customer key or
an identifier never becomes a label. The names and labels are the contract in docs/design.md.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from typing import Callable, Mapping, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from pipeline.windows import WindowStats
from sinks.endpoints import ReadyCheck, serve_endpoints

# Event time to processing can be hours for replays; keep resolution where live traffic sits.
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 1800, 3600, 86400)
BATCH_ROW_BUCKETS = (1, 10, 100, 500, 1000, 5000, 10000, 20000, 50000)
GC_PAUSE_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)


@dataclass(frozen=True)
class Metrics:
    registry: CollectorRegistry
    events_processed: Counter
    events_invalid: Counter
    events_suppressed: Counter
    late_events: Counter
    window_refused: Counter
    journeys_merged: Counter
    alerts: Counter
    channel_score: Gauge
    channel_window_events: Gauge
    customers_at_risk: Gauge
    journeys_closed: Counter
    identity_links: Counter
    processing_latency: Histogram
    clickhouse_latency: Histogram
    sink_batch_rows: Histogram
    sink_batch_duration: Histogram
    sink_failures: Counter
    sink_blocked: Gauge
    sink_rows_rejected: Counter
    consumer_lag: Gauge
    last_event_processed: Gauge
    window_score: Gauge
    window_nps: Gauge
    window_csat: Gauge
    window_ces: Gauge
    window_friction_ratio: Gauge
    window_error_ratio: Gauge
    window_events: Gauge
    alertmanager_sent: Counter
    alertmanager_failures: Counter
    alertmanager_dropped: Counter
    gc_pauses: Histogram

    @classmethod
    def create(cls, registry: CollectorRegistry | None = None) -> Metrics:
        registry = registry if registry is not None else CollectorRegistry()
        kw = {"registry": registry}
        return cls(
            registry=registry,
            events_processed=Counter(
                "cx_events_processed", "Events accepted and processed.", ["channel"], **kw),
            events_invalid=Counter(
                "cx_events_invalid", "Messages dead-lettered, by reason.", ["channel", "reason"], **kw),
            events_suppressed=Counter(
                "cx_events_suppressed", "Messages of erased customers, dropped at ingest.", ["channel"], **kw),
            late_events=Counter(
                "cx_late_events", "Events beyond the allowed lateness: stored flagged late, in no journey.",
                ["channel"], **kw),
            window_refused=Counter(
                "cx_window_refused", "Touchpoints the channel windows refused: older than the longest window "
                "behind the newest event time seen (a backlog read far out of time order).", ["channel"], **kw),
            journeys_merged=Counter(
                "cx_journeys_merged", "Journeys that became part of another (back-stitching, a late bridge).", **kw),
            alerts=Counter("cx_alerts", "Alerts raised (firing transitions).", ["rule", "severity"], **kw),
            channel_score=Gauge(
                "cx_channel_score", "Rolling mean touchpoint score of the channel (0-100).", ["channel"], **kw),
            channel_window_events=Gauge(
                "cx_channel_window_events", "Touchpoints in the channel's rolling window.", ["channel"], **kw),
            customers_at_risk=Gauge(
                "cx_customers_at_risk", "Customers on this worker whose rolling score is below the at-risk threshold.", **kw),
            journeys_closed=Counter(
                "cx_journeys_closed", "Journeys closed, by outcome.", ["outcome"], **kw),
            identity_links=Counter(
                "cx_identity_links", "Identity link decisions (linked, confirmed, refused) and why.",
                ["decision", "reason"], **kw),
            processing_latency=Histogram(
                "cx_event_processing_latency_seconds", "Event time to processed by the customer stage.",
                buckets=LATENCY_BUCKETS, **kw),
            clickhouse_latency=Histogram(
                "cx_event_to_clickhouse_latency_seconds", "Event time to its touchpoint row written in ClickHouse.",
                buckets=LATENCY_BUCKETS, **kw),
            sink_batch_rows=Histogram(
                "cx_sink_batch_rows", "Rows per ClickHouse insert.", ["table"], buckets=BATCH_ROW_BUCKETS, **kw),
            sink_batch_duration=Histogram(
                "cx_sink_batch_duration_seconds", "Duration of one ClickHouse insert, retries included.", ["table"], **kw),
            sink_failures=Counter(
                "cx_sink_failures", "Failed ClickHouse insert attempts.", ["table"], **kw),
            sink_blocked=Gauge(
                "cx_sink_blocked", "1 while ClickHouse is unavailable and the sink holds rows and acknowledgements (backpressure).", **kw),
            sink_rows_rejected=Counter(
                "cx_sink_rows_rejected", "Rows ClickHouse refused for their data, moved to dead_letters.", ["table"], **kw),
            consumer_lag=Gauge(
                "cx_consumer_lag_messages", "Messages behind the end of the topic, summed over this worker's partitions.", ["topic"], **kw),
            last_event_processed=Gauge(
                "cx_last_event_processed_timestamp_seconds", "Wall-clock time the last event was processed.", **kw),
            **_window_gauges(kw),
            alertmanager_sent=Counter(
                "cx_alertmanager_sent", "Alert transitions accepted by Alertmanager's v2 API.", **kw),
            alertmanager_failures=Counter(
                "cx_alertmanager_failures", "Failed pushes to Alertmanager (each attempt, retries included).", **kw),
            alertmanager_dropped=Counter(
                "cx_alertmanager_dropped", "Alert transitions dropped for Alertmanager: queue full (oldest dropped) or retries exhausted.", ["reason"], **kw),
            gc_pauses=Histogram(
                "cx_gc_pause_seconds", "The worker's garbage-collector pauses (every thread waits), by generation collected.",
                ["generation"], buckets=GC_PAUSE_BUCKETS, **kw),
        )

    def set_window_figures(self, figures: Mapping[tuple[str, str, str], WindowStats]) -> None:
        """Replace the cx_window_* series with these (channel, dimension, window) figures.

        Series not in ``figures`` are removed, so a dimension value that left the top N or a
        channel that left the kept buckets disappears instead of showing a stale value; a mean
        that is None (nothing to average) has no series either.
        """
        for gauge, read in _WINDOW_FIGURES.items():
            metric = getattr(self, gauge)
            wanted = {key: read(stats) for key, stats in figures.items()}
            for labels in _series(metric) - {key for key, value in wanted.items() if value is not None}:
                metric.remove(*labels)
            for key, value in wanted.items():
                if value is not None:
                    metric.labels(*key).set(value)

    def serve(self, port: int, addr: str = "0.0.0.0", ready: ReadyCheck | None = None) -> ThreadingHTTPServer:
        """/metrics, /healthz and /readyz (from ``ready``) on one port; see sinks/endpoints.py."""
        return serve_endpoints(self.registry, port, addr, ready)


# The cx_window_* gauges: attribute, metric name, help, and how each reads a window's figures.
# Labels: channel, dimension (the value: a queue, store id, app version or page group; "" for the
# channel total, "(other)" for values outside the top N) and window ("5m", "1h").
_WINDOW_LABELS = ["channel", "dimension", "window"]
_WINDOW_GAUGES: tuple[tuple[str, str, str, Callable[[WindowStats], float | None]], ...] = (
    ("window_score", "cx_window_score", "Mean touchpoint score in the window (0-100).", lambda s: s.mean_score),
    ("window_nps", "cx_window_nps", "NPS in the window: % promoters - % detractors (-100..100).", lambda s: s.nps),
    ("window_csat", "cx_window_csat", "Mean CSAT answer in the window (1-5).", lambda s: s.mean_csat),
    ("window_ces", "cx_window_ces", "Mean CES answer in the window (1-7, 1 = least effort).", lambda s: s.mean_ces),
    ("window_friction_ratio", "cx_window_friction_ratio", "Share of touchpoints with a friction signal (0-1).",
     lambda s: s.friction_rate),
    ("window_error_ratio", "cx_window_error_ratio", "Share of touchpoints with a web error or app crash (0-1).",
     lambda s: s.error_rate),
    ("window_events", "cx_window_events", "Touchpoints in the window.", lambda s: float(s.volume)),
)
_WINDOW_FIGURES: dict[str, Callable[[WindowStats], float | None]] = {
    attribute: read for attribute, _, _, read in _WINDOW_GAUGES
}


def _window_gauges(kw: dict) -> dict[str, Gauge]:
    return {attribute: Gauge(name, help_text, _WINDOW_LABELS, **kw) for attribute, name, help_text, _ in _WINDOW_GAUGES}


def _series(gauge: Gauge) -> set[tuple[str, ...]]:
    """The label values of the series a labelled gauge has now."""
    return {
        tuple(sample.labels[name] for name in _WINDOW_LABELS)
        for metric in gauge.collect()
        for sample in metric.samples
    }


def observe_ages(histogram: Histogram, now: float, occurred_ms: Sequence[int]) -> None:
    """``histogram.observe(now - t)`` for every event time ``t`` (milliseconds; a future one
    counts as 0), in one step per bucket instead of one per event.

    Per event, ``observe`` takes the sum's lock and scans the bounds; the hot path observes two
    latencies per event, which cost about 3% of the worker's time. This updates the histogram's
    own sum and buckets (prometheus_client's internals: its ``observe`` finds the first bound at
    or above the value, as ``bisect_left`` does; tests/unit/test_metrics.py compares the two), so
    the exposition is exactly what ``observe`` would have made."""
    if not occurred_ms:
        return
    histogram._raise_if_not_observable()
    bounds = histogram._upper_bounds
    counts = [0] * len(bounds)
    total = 0.0
    for at_ms in occurred_ms:
        age = max(now - at_ms / 1000, 0.0)
        counts[bisect_left(bounds, age)] += 1
        total += age
    histogram._sum.inc(total)
    for bucket, count in zip(histogram._buckets, counts):
        if count:
            bucket.inc(count)
