"""The Faust application: topics, tables and agents wired to the pure pipeline and the sinks.

Built by :func:`build_app` from one :class:`Settings` (no module-level app), so tests and the
demo can run several differently-configured workers. The agents are thin: they decode raw bytes
(never Faust's value decoder, which acknowledges a message before it fails), call ``pipeline``
and hand rows to :class:`sinks.batcher.AckingSink`, which acknowledges after the insert.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import faust
import orjson
from faust.types import EventT, StreamT

from pipeline.state_codec import state_from_json, state_to_json
from pipeline.alerting import AlertEvent
from pipeline.customer import CustomerStep, Emitted, alert_row
from pipeline.dead_letters import dead_letter_headers, dead_letter_row
from pipeline.decode import Decoder
from pipeline.identifiers import identifier_key, primary_identifier
from pipeline.identity import CONFIRMED, anonymous_key, decide_link
from pipeline.model import CHANNELS, DeadLetter, Event, IdentityLink, from_wire, to_wire
from pipeline.channel_health import ChannelHealth
from sinks.batcher import AckingSink
from sinks.clickhouse import ClickHouseWriter
from sinks.metrics import Metrics
from touchpoint.runtime import Runtime

log = logging.getLogger(__name__)

JOURNEY_CLOSE_SETTLE_SECONDS = 30.0


@dataclass
class Stages:
    """What the CLI and tests need from a built app."""

    app: faust.App
    runtime: Runtime


def build_app(runtime: Runtime) -> Stages:
    settings = runtime.settings
    topics = settings.topics
    app = faust.App(
        settings.app_id,
        broker=[f"kafka://{server.strip()}" for server in settings.kafka_bootstrap_servers.split(",")],
        store="memory://",
        datadir=settings.data_dir,
        topic_partitions=settings.partitions,
        topic_disable_leader=True,
        web_enabled=False,
        broker_session_timeout=settings.session_timeout_seconds,
        broker_heartbeat_interval=1.0,
        broker_commit_interval=1.0,
        producer_linger=0.02,
        consumer_auto_offset_reset="earliest",
        table_cleanup_interval=60.0,
        key_serializer="raw",
        value_serializer="raw",
    )
    raw = {"key_serializer": "raw", "value_serializer": "raw"}
    channel_topics = {topics.channel(channel): channel for channel in CHANNELS}
    source_topic = app.topic(*channel_topics, topics.identity, **raw)
    identifiers_topic = app.topic(topics.identifiers, partitions=settings.partitions, **raw)
    customers_topic = app.topic(topics.customers, partitions=settings.partitions, **raw)
    dlq_topic = app.topic(topics.dlq, **raw)
    alerts_topic = app.topic(topics.alerts, **raw)
    # Tables hold bytes we encode ourselves (the app's serializers are raw).
    identity_table = app.Table("identity", default=None, partitions=settings.partitions)
    customer_table = app.Table("customers", default=None, partitions=settings.partitions,
                               use_partitioner=True)

    metrics = runtime.metrics
    decoder = runtime.decoder
    step = CustomerStep(runtime.model)
    health = ChannelHealth(runtime.model)
    sink = AckingSink(lambda: ClickHouseWriter(settings.clickhouse), metrics,
                      settings.sink_batch_rows, settings.sink_flush_seconds)
    watermark = {"ms": 0}
    # Wall-clock time each customer was last touched: a replay compresses hours of event time into
    # seconds, and a journey must not be closed by the timer while its events are still arriving.
    touched: dict[bytes, float] = {}

    @app.agent(source_topic, name="ingest")
    async def ingest(stream: StreamT) -> None:
        async for event in stream.events():
            message = event.message
            channel = channel_topics.get(message.topic)
            result = decoder.decode(message.value, channel, int(time.time() * 1000))
            if isinstance(result, DeadLetter):
                metrics.events_invalid.labels(channel or "identity", result.reason.value).inc()
                await dlq_topic.send(key=message.key, value=message.value or b"",
                                     headers=dead_letter_headers(result, message.topic, message.partition, message.offset))
            elif isinstance(result, IdentityLink):
                for id_type, value in result.identifiers.items():
                    await identifiers_topic.send(key=identifier_key(id_type, value).encode(),
                                                 value=link_message(result.customer_id, result.event_id, result.occurred_at_ms, id_type, value))
            elif result.customer_id:
                await customers_topic.send(key=result.customer_id.encode(), value=to_wire(result))
                for id_type, value in result.identifiers.items():
                    await identifiers_topic.send(key=identifier_key(id_type, value).encode(),
                                                 value=link_message(result.customer_id, result.event_id, result.occurred_at_ms, id_type, value))
            else:
                id_type, value = primary_identifier(result.identifiers)  # decode guarantees one
                await identifiers_topic.send(key=identifier_key(id_type, value).encode(),
                                             value=b'{"kind":"event","event":' + to_wire(result) + b"}")

    @app.agent(identifiers_topic, name="resolve")
    async def resolve(stream: StreamT) -> None:
        async for event in stream.noack().events():
            key = event.key.decode()
            message = orjson.loads(event.value)
            linked = identity_table.get(event.key)
            linked_to = linked.decode() if linked else None
            if message["kind"] == "event":
                customer_key = linked_to or anonymous_key(key)
                await customers_topic.send(key=customer_key.encode(),
                                           value=orjson.dumps(message["event"]))
                sink.add({}, ack=_acker(stream, event))
            else:
                decision = decide_link(key, linked_to, message)
                if decision.store:
                    identity_table[event.key] = decision.customer_key.encode()
                metrics.identity_links.labels(decision.decision).inc()
                rows = [] if decision.decision == CONFIRMED else [decision.row]
                sink.add({"identity_links": rows}, ack=_acker(stream, event))
            if sink.full:
                await sink.flush()

    @app.agent(customers_topic, name="customer")
    async def customer(stream: StreamT) -> None:
        async for event in stream.noack().events():
            key = event.key.decode()
            touchpoint = from_wire(event.value)
            state = state_from_json(customer_table.get(event.key))
            new_state, emitted = step.apply_event(state, key, touchpoint)
            if not emitted.duplicate:
                customer_table[event.key] = state_to_json(new_state)
                channel_alerts = health.observe(touchpoint, emitted.touchpoint_score)
                emitted.alerts.extend(channel_alerts)
                emitted.rows["alerts"].extend(alert_row(a, a.occurred_at_ms) for a in channel_alerts)
            watermark["ms"] = max(watermark["ms"], touchpoint.occurred_at_ms)
            touched[event.key] = time.monotonic()
            await publish_alerts(alerts_topic, emitted.alerts)
            record_emitted(metrics, touchpoint, emitted)
            sink.add(emitted.rows, ack=_acker(stream, event),
                     after=_written(metrics, touchpoint.occurred_at_ms))
            if sink.full:
                await sink.flush()

    @app.agent(dlq_topic, name="dead-letters")
    async def dead_letters(stream: StreamT) -> None:
        async for event in stream.noack().events():
            message = event.message
            row = dead_letter_row(message.headers, message.key, message.value)
            sink.add({"dead_letters": [row]}, ack=_acker(stream, event))
            if sink.full:
                await sink.flush()

    @app.timer(interval=settings.sink_flush_seconds / 2, name="flush")
    async def flush() -> None:
        await sink.flush_if_due()

    @app.timer(interval=5.0, name="journeys")
    async def close_idle_journeys() -> None:
        """Journeys close on event time also when a customer goes quiet (see docs/design.md)."""
        closed_keys = []
        emitted = Emitted()
        at_risk = 0
        threshold = runtime.model.customer.at_risk_threshold
        settled = time.monotonic() - JOURNEY_CLOSE_SETTLE_SECONDS
        for raw_key, raw_state in list(customer_table.items()):
            state = state_from_json(raw_state)
            if state is None:
                continue
            at_risk += state.rolling_score is not None and state.rolling_score < threshold
            if touched.get(raw_key, 0.0) > settled:
                continue
            result = step.close_if_idle(state, raw_key.decode(), watermark["ms"])
            if result is not None:
                new_state, closed = result
                emitted.extend(closed)
                closed_keys.append((raw_key, new_state))
        metrics.customers_at_risk.set(at_risk)
        if not closed_keys:
            return
        sink.add(emitted.rows)
        await sink.flush()  # stored first, then dropped from state: a crash re-closes, never loses
        for raw_key, new_state in closed_keys:
            customer_table[raw_key] = state_to_json(new_state)
            touched.pop(raw_key, None)
        for outcome in emitted.closed_outcomes:
            metrics.journeys_closed.labels(outcome).inc()

    @app.timer(interval=2.0, name="channels")
    async def channel_gauges() -> None:
        alerts = health.evaluate_quiet()
        if alerts:
            sink.add({"alerts": [alert_row(alert, alert.occurred_at_ms) for alert in alerts]})
            await publish_alerts(alerts_topic, alerts)
            count_alerts(metrics, alerts)
        for channel, stats in health.channel_totals().items():
            if stats.mean_score is not None:
                metrics.channel_score.labels(channel).set(stats.mean_score)
            metrics.channel_window_events.labels(channel).set(stats.volume)

    @app.timer(interval=5.0, name="lag")
    async def report_lag() -> None:
        consumer = app.consumer
        lag: dict[str, int] = {}
        for tp in consumer.assignment():
            try:
                highwater = consumer.highwater(tp)
                position = await consumer.position(tp)
            except Exception:  # noqa: BLE001 - a metric must not kill the worker mid-rebalance
                continue
            if highwater is not None and position is not None:
                lag[tp.topic] = lag.get(tp.topic, 0) + max(highwater - position, 0)
        for topic, value in lag.items():
            metrics.consumer_lag.labels(topic).set(value)

    @app.on_before_shutdown.connect
    async def on_shutdown(app: faust.App, **_: Any) -> None:
        await sink.flush()

    return Stages(app, runtime)


def _acker(stream: StreamT, event: EventT):
    async def ack() -> None:
        await stream.ack(event)
    return ack


def _written(metrics: Metrics, occurred_at_ms: int):
    def observe() -> None:
        metrics.clickhouse_latency.observe(max(time.time() - occurred_at_ms / 1000, 0.0))
    return observe


def link_message(customer_id: str, event_id: str, occurred_at_ms: int, id_type: str, value: str) -> bytes:
    return orjson.dumps({
        "kind": "link", "customer_id": customer_id, "event_id": event_id,
        "occurred_at_ms": occurred_at_ms, "type": id_type, "value": value,
    })


async def publish_alerts(topic: Any, alerts: list[AlertEvent]) -> None:
    for alert in alerts:
        await topic.send(key=alert.alert_id.encode(), value=orjson.dumps(alert_row(alert, alert.occurred_at_ms)))


def record_emitted(metrics: Metrics, event: Event, emitted: Emitted) -> None:
    if emitted.duplicate:
        return
    metrics.events_processed.labels(event.channel).inc()
    now = time.time()
    metrics.processing_latency.observe(max(now - event.occurred_at_ms / 1000, 0.0))
    metrics.last_event_processed.set(now)
    for outcome in emitted.closed_outcomes:
        metrics.journeys_closed.labels(outcome).inc()
    count_alerts(metrics, emitted.alerts)


def count_alerts(metrics: Metrics, alerts: list[AlertEvent]) -> None:
    for alert in alerts:
        if alert.state == "firing":
            metrics.alerts.labels(alert.rule, alert.severity).inc()
