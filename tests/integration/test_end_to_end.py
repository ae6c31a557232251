"""The spine, end to end on real servers: generated traffic in, rows, metrics and alerts out."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest

from pipeline.synthetic import Scenario, generate, outage_burst
from touchpoint.generate import produce
from touchpoint.demo import run_scenario
from touchpoint.harness import clickhouse_client, metric_value, wait_until
from touchpoint.settings import Settings

pytestmark = pytest.mark.integration


def test_generated_traffic_end_to_end(settings: Settings, tmp_path: Path) -> None:
    scenario = generate(customers=60, seed=11, start_ms=int(time.time() * 1000) - 48 * 3600_000)
    manifest = scenario.manifest
    valid_ids = [event_id for ids in manifest.valid_event_ids.values() for event_id in ids]

    worker = run_scenario(settings, scenario, tmp_path, timeout=300)
    db = settings.clickhouse.database
    client = clickhouse_client(settings)
    try:
        # a live outage on the web: the channel rule over its 5-minute window must fire
        burst = outage_burst(seed=3, start_ms=int(time.time() * 1000) - 60_000, span_ms=50_000)
        produce(Scenario(burst, manifest), settings.kafka_bootstrap_servers, settings.topic_prefix)
        valid_ids += [message.event_id for message in burst]
        wait_until(lambda: client.execute(
            f"SELECT count() FROM {db}.alerts FINAL WHERE subject_kind = 'channel'")[0][0] > 0,
            timeout=30, describe="a channel alert")

        wait_until(lambda: client.execute(f"SELECT uniqExact(event_id) FROM {db}.touchpoints")[0][0] == len(valid_ids),
                   timeout=30, describe="the outage events stored")

        # every valid event is in touchpoints exactly once
        rows = client.execute(f"SELECT event_id FROM {db}.customer_touchpoints")
        stored = Counter(event_id for (event_id,) in rows)
        assert set(stored) == set(valid_ids)
        assert max(stored.values()) == 1
        assert client.execute(f"SELECT count() FROM {db}.touchpoints FINAL")[0][0] == len(valid_ids)

        # the invalid ones are in dead_letters with a reason, and counted by the metrics
        dead = dict(client.execute(f"SELECT reason, count() FROM {db}.dead_letters FINAL GROUP BY reason"))
        assert sum(dead.values()) == manifest.malformed
        assert {"not_decodable", "unknown_schema", "channel_mismatch", "timestamp_absurd", "oversized"} <= set(dead)
        exposition = worker.scrape()
        assert metric_value(exposition, "cx_events_invalid_total") == manifest.malformed
        for reason, count in dead.items():
            assert metric_value(exposition, "cx_events_invalid_total", {"reason": reason}) == count

        # journeys split where the generated gaps say
        journeys = dict(client.execute(
            f"SELECT customer_key, count() FROM {db}.customer_journeys GROUP BY customer_key"))
        for customer, expected in manifest.journeys.items():
            assert journeys.get(customer) == expected, (customer, client.execute(
                f"SELECT journey_id, status, outcome, channels, touchpoint_count, started_at, ended_at "
                f"FROM {db}.customer_journeys WHERE customer_key = %(c)s ORDER BY started_at", {"c": customer}))

        # every journey's touchpoint count is the number of touchpoints that name it
        from touchpoint.faults import JOURNEYS_DISAGREEING
        wait_until(lambda: client.execute(JOURNEYS_DISAGREEING.format(db=db))[0][0] == 0, timeout=20,
                   describe="journeys agreeing with their touchpoints")

        # the scripted unhappy customer has an alert, the happy one has none
        alerted = {key for (key,) in client.execute(
            f"SELECT DISTINCT customer_key FROM {db}.alerts FINAL WHERE subject_kind = 'customer' AND state = 'firing'")}
        assert set(manifest.unhappy_customers) <= alerted
        assert manifest.happy_customer not in alerted

        # the degraded channel raised a channel-level alert
        channels = {c for (c,) in client.execute(
            f"SELECT DISTINCT channel FROM {db}.alerts FINAL WHERE subject_kind = 'channel' AND state = 'firing'")}
        assert manifest.degraded.channel in channels

        # the metrics scraped over HTTP agree with ClickHouse
        per_channel = dict(client.execute(f"SELECT channel, count() FROM {db}.customer_touchpoints GROUP BY channel"))
        for channel, count in per_channel.items():
            assert metric_value(exposition, "cx_events_processed_total", {"channel": channel}) == count
        def firing_rows() -> int:
            return client.execute(f"SELECT count() FROM {db}.alerts FINAL WHERE state = 'firing'")[0][0]
        try:
            wait_until(lambda: metric_value(worker.scrape(), "cx_alerts_total") == firing_rows(), timeout=10,
                       describe="the alert counter agreeing with the alerts table")
        except TimeoutError:
            raise AssertionError(client.execute(
                f"SELECT alert_id, rule, subject_kind, channel, state, version FROM {db}.alerts ORDER BY alert_id"))
    finally:
        client.disconnect()
        assert worker.stop() == 0
