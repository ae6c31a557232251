"""Every Prometheus metric Touchpoint exposes, built by one factory that takes a registry.

Tests build a fresh registry each; the worker serves the process-wide one. Labels are bounded by
construction (channels, reasons, rules, severities, tables, outcomes, topics): a customer key or
an identifier never becomes a label. The names and labels are the contract in docs/design.md.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

# Event time to processing can be hours for replays; keep resolution where live traffic sits.
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 1800, 3600, 86400)
BATCH_ROW_BUCKETS = (1, 10, 100, 500, 1000, 5000, 10000, 20000, 50000)


@dataclass(frozen=True)
class Metrics:
    registry: CollectorRegistry
    events_processed: Counter
    events_invalid: Counter
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
                "cx_identity_links", "Identity link decisions.", ["decision"], **kw),
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
        )

    def serve(self, port: int, addr: str = "0.0.0.0") -> None:
        start_http_server(port, addr=addr, registry=self.registry)
