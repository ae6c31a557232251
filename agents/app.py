"""The Faust application: topics, tables, the batched hot path and the timers, wired together.

Built by :func:`build_app` from one :class:`Runtime` (no module-level app), so tests and the
demo can run several differently-configured workers. Faust runs the consumer group, rebalancing,
the tables with their changelogs and recovery, commits and timers; the records of Touchpoint's
own topics are drained in batches by :class:`agents.batching.BatchingConsumer` and processed by
:class:`agents.hot_path.HotPath`, which acknowledges them only after their rows are stored.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

import faust

from agents.batching import BatchingApp
from agents.hot_path import HotPath, count_alerts, publish_alerts
from pipeline.channel_health import ChannelHealth
from pipeline.channel_scores import channel_report
from pipeline.customer import CustomerStep, alert_row
from pipeline.identity import IdentityRules
from pipeline.model import CHANNELS
from sinks.alertmanager import pusher_for
from sinks.batcher import AckingSink
from sinks.clickhouse import ClickHouseWriter
from touchpoint.ops.suppressions import REFRESH_SECONDS as SUPPRESSION_REFRESH_SECONDS
from touchpoint.ops.suppressions import load_suppression_list
from touchpoint.runtime import Runtime, identifier_policy
from touchpoint.security import faust_broker_credentials

log = logging.getLogger(__name__)

JOURNEY_CLOSE_SETTLE_SECONDS = 30.0
PRODUCER_BATCH_BYTES = 256 * 1024
# Records per fetch handed to the hot path. Faust's default (no limit) handed over everything
# prefetched, 20,000 records and more after a pause; all of them, and the messages made of them,
# lived through several young garbage collections and were promoted: the worker's gen0 time on
# 50,000 bench events was 0.85-0.96 s unlimited and 0.50-0.60 s with 2,000.
MAX_POLL_RECORDS = 2000


@dataclass
class Stages:
    """What the CLI and tests need from a built app."""

    app: faust.App
    runtime: Runtime


def build_app(runtime: Runtime) -> Stages:
    settings = runtime.settings
    topics = settings.topics
    app = BatchingApp(
        settings.app_id,
        broker=[f"kafka://{server.strip()}" for server in settings.kafka_bootstrap_servers.split(",")],
        broker_credentials=faust_broker_credentials(settings),
        store="memory://",
        datadir=settings.data_dir,
        topic_partitions=settings.partitions,
        topic_disable_leader=True,
        web_enabled=False,
        broker_session_timeout=settings.session_timeout_seconds,
        broker_heartbeat_interval=1.0,
        broker_commit_interval=1.0,
        producer_linger=0.02,
        producer_max_batch_size=PRODUCER_BATCH_BYTES,
        broker_max_poll_records=MAX_POLL_RECORDS,
        consumer_auto_offset_reset="earliest",
        table_cleanup_interval=60.0,
        # The check guards RocksDB files that outlive their changelog; with the memory store it
        # only crashed workers on the local broker when a rebalance read a stale highwater.
        recovery_consistency_check=False,
        key_serializer="raw",
        value_serializer="raw",
    )
    app.fetch_max_wait_ms = settings.fetch_max_wait_ms
    channel_topics = {topics.channel(channel): channel for channel in CHANNELS}
    # Tables hold bytes we encode ourselves; the hot path writes them outside any Faust stream,
    # so their changelog partition comes from the key (the same partitioner as the topics').
    # bytes key and value types make the changelog serializers raw too (else Faust uses JSON,
    # and recovery cannot read back what was written).
    identity_table = app.Table("identity", default=None, partitions=settings.partitions,
                               use_partitioner=True, key_type=bytes, value_type=bytes)
    customer_table = app.Table("customers", default=None, partitions=settings.partitions,
                               use_partitioner=True, key_type=bytes, value_type=bytes)

    metrics = runtime.metrics
    step = CustomerStep(runtime.model)
    health = ChannelHealth(runtime.model)
    sink = AckingSink(lambda: ClickHouseWriter(settings.clickhouse), metrics,
                      settings.sink_batch_rows, settings.sink_flush_seconds,
                      ack_before_write=settings.unsafe_ack_before_write)
    pusher = pusher_for(settings.alertmanager_url, metrics)
    hot_path = HotPath(
        topics=topics, channel_topics=channel_topics, partitions=settings.partitions,
        decoder=runtime.decoder, step=step, health=health, identity=IdentityRules(runtime.model.identity, protect=identifier_policy(settings).protect), sink=sink, metrics=metrics,
        consumer=app.consumer, producer=app.producer,
        identity_table=identity_table, customer_table=customer_table,
        topic_partitions=app.consumer.topic_partitions,
        at_risk_threshold=runtime.model.customer.at_risk_threshold,
        pusher=pusher,
    )
    sink.settle = hot_path.settle
    app.attach_batch_handler(hot_path, settings.partitions, flush_grace_seconds=settings.shutdown_grace_seconds)

    @app.on_partitions_revoked.connect
    async def on_revoked(app: faust.App, revoked: Any, **_: Any) -> None:
        hot_path.on_partitions_revoked()

    customer_table.on_recover(hot_path.on_recovered)

    if pusher is not None:
        @app.on_before_shutdown.connect
        async def stop_pushing(app: faust.App, **_: Any) -> None:
            await asyncio.get_running_loop().run_in_executor(None, pusher.stop)

    @app.task
    async def flush() -> None:
        try:
            await sink.flush_when_due()
        except Exception as exc:
            # A Faust task that raises ends without a word, and no buffer would be flushed on time
            # again: the worker would sit idle with its offsets uncommitted.
            log.exception("the sink's flusher failed; stopping the worker (uncommitted events are "
                          "processed again after the restart)")
            await app.crash(exc)

    @app.timer(interval=1.0, name="readiness")
    async def report_sink_health() -> None:
        """/readyz: not ready while ClickHouse refuses writes and rows are waiting."""
        runtime.readiness.write_finished(ok=not sink.blocked, pending_rows=sink.pending_rows)

    hot_path.suppression = load_suppression_list(settings.clickhouse)

    @app.timer(interval=SUPPRESSION_REFRESH_SECONDS, name="suppressions")
    async def refresh_suppressions() -> None:
        """Erasures (`touchpoint forget`) reach running workers: drop at ingest, evict state."""
        try:
            loaded = await asyncio.get_running_loop().run_in_executor(
                None, load_suppression_list, settings.clickhouse)
        except Exception as exc:  # noqa: BLE001 - ClickHouse down: the list in force stays, retried next tick
            log.warning("could not refresh the suppression list (%s); keeping the one loaded", exc)
            return
        evicted = await hot_path.evict_suppressed(loaded)
        if evicted:
            log.info("evicted the state of %d erased key(s)", evicted)

    @app.timer(interval=5.0, name="journeys")
    async def close_idle_journeys() -> None:
        await hot_path.close_idle_journeys(JOURNEY_CLOSE_SETTLE_SECONDS)
        metrics.customers_at_risk.set(hot_path.customers_at_risk)

    @app.timer(interval=2.0, name="channels")
    async def channel_figures() -> None:
        """Channel and dimension windows: rows for channel_scores, gauges, and quiet-time alerts."""
        idle = 0.0 if hot_path.last_processed is None else time.monotonic() - hot_path.last_processed
        alerts = health.evaluate_quiet(idle)
        if alerts:
            sink.add({"alerts": [alert_row(alert, alert.occurred_at_ms) for alert in alerts]})
            await publish_alerts(app.producer, topics.alerts, alerts, pusher)
            count_alerts(metrics, alerts)
        report = channel_report(health.take_figures(), int(time.time() * 1000), health.figures_now(idle))
        if report.rows:
            sink.add({"channel_scores": report.rows})
        metrics.set_window_figures(report.gauges)
        for channel, count in health.take_refused().items():
            metrics.window_refused.labels(channel).inc(count)
        for channel, stats in health.channel_totals(idle).items():
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

    return Stages(app, runtime)
