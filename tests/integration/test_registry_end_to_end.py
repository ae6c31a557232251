"""Registry-framed Avro through a real worker: ids from a (fake) registry, not the bundled ones.

The registry is the in-process fake speaking Confluent's REST API (Tansu has none); Kafka,
ClickHouse and the worker process are real. A schema registered after the worker started (v2,
with a new optional field) must be fetched on first sight and its events accepted.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from fastavro import parse_schema

from pipeline.schema_registry import EVENT_SCHEMA
from pipeline.synthetic import Scenario, SyntheticMessage, generate
from pipeline.wireformat import confluent_schema_id, encode_confluent
from tests.fake_schema_registry import FakeSchemaRegistry
from touchpoint.demo import run_scenario
from touchpoint.generate import produce
from touchpoint.harness import clickhouse_client, wait_until
from touchpoint.registry import DEFAULT_COMPATIBILITY, bundled_schema_text, frame_scenario, register_with_settings
from touchpoint.settings import Settings

pytestmark = pytest.mark.integration


def test_avro_with_registry_ids_end_to_end(settings: Settings, tmp_path: Path) -> None:
    with FakeSchemaRegistry() as registry:
        # Someone else's subject first, so no id Touchpoint gets is the bundled 1 or 2.
        registry.register("orders-value", json.dumps({"type": "record", "name": "Order", "fields": []}))
        registry.register("payments-value", json.dumps({"type": "record", "name": "Payment", "fields": []}))
        configured = settings.with_overrides(schema_registry_url=registry.url)
        registered = register_with_settings(configured, DEFAULT_COMPATIBILITY)
        event_id = next(r.schema_id for r in registered if r.subject.endswith(".web-value"))
        assert event_id not in (1, 2)

        scenario = generate(customers=40, seed=5, start_ms=int(time.time() * 1000) - 48 * 3600_000)
        framed = frame_scenario(scenario, configured, avro_only=True)
        assert all(confluent_schema_id(m.value) == event_id for m in framed.messages if m.valid and m.topic == "web")

        worker = run_scenario(configured, framed, tmp_path, rate=40.0, timeout=300)
        try:
            warmed = [path for method, path in registry.requests if path.endswith("/versions")]
            assert warmed, "the worker fetched the registered versions at start-up"
            client = clickhouse_client(configured)
            db = configured.clickhouse.database
            valid = {m.event_id for m in framed.messages if m.valid and m.topic != "identity"}
            stored = {event for (event,) in client.execute(f"SELECT event_id FROM {db}.touchpoints FINAL")}
            assert stored == valid
            dead = client.execute(f"SELECT count() FROM {db}.dead_letters FINAL")[0][0]
            assert dead == scenario.manifest.malformed

            # v2 registered after start: the worker has never seen its id and must fetch it.
            v1 = json.loads(bundled_schema_text(EVENT_SCHEMA))
            v2 = {**v1, "fields": [*v1["fields"], {"name": "session_id", "type": ["null", "string"], "default": None}]}
            v2_id = registry.register(f"{configured.topic_prefix}.web-value", json.dumps(v2))
            now_ms = int(time.time() * 1000)
            v2_events = [
                SyntheticMessage("web", b"cust-v2-000001", encode_confluent({
                    "event_id": f"ev-v2-{n}", "occurred_at": now_ms - 1000 + n, "channel": "web",
                    "type": "page_view", "customer_id": "cust-v2-000001", "identifiers": None,
                    "attributes": {"page": "/home"}, "feedback": None, "value": None, "session_id": f"s-{n}",
                }, v2_id, parse_schema(v2)), now_ms, True, f"ev-v2-{n}")
                for n in range(3)
            ]
            fetched_before = sum(1 for _, path in registry.requests if path == f"/schemas/ids/{v2_id}")
            produce(Scenario(v2_events, scenario.manifest), configured.kafka_bootstrap_servers, configured.topic_prefix)
            wait_until(lambda: client.execute(
                f"SELECT count() FROM {db}.touchpoints FINAL WHERE event_id LIKE 'ev-v2-%'")[0][0] == 3,
                timeout=60, describe="the v2 events stored")
            assert fetched_before == 0
            assert sum(1 for _, path in registry.requests if path == f"/schemas/ids/{v2_id}") == 1
            assert client.execute(f"SELECT count() FROM {db}.dead_letters FINAL")[0][0] == dead
        finally:
            worker.stop()
