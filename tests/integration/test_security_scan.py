"""With identifier hashing on, a real worker's logs and /metrics hold none of the raw identifiers it read."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from pipeline.decode import Decoder
from pipeline.model import DeadLetter
from pipeline.schema_registry import BundledSchemas
from pipeline.synthetic import Scenario, generate
from touchpoint.demo import run_scenario
from touchpoint.harness import clickhouse_client
from touchpoint.settings import Settings

pytestmark = pytest.mark.integration


def raw_identifiers(scenario: Scenario) -> set[str]:
    """Every identifier value the scenario's valid messages carry, as decoded without hashing.

    ``customer_id`` is the business key and stays clear by design; all others (phones, e-mails,
    device, anonymous and loyalty ids) must never appear once hashing is on.
    """
    decoder = Decoder(BundledSchemas())
    now_ms = int(time.time() * 1000)
    values: set[str] = set()
    for message in scenario.messages:
        if not message.valid:
            continue
        decoded = decoder.decode(message.value, None, now_ms)
        if isinstance(decoded, DeadLetter):
            continue
        values.update(value for kind, value in decoded.identifiers.items() if kind != "customer_id")
    return values


def test_logs_and_metrics_carry_no_raw_identifiers(settings: Settings, tmp_path: Path) -> None:
    # At the production log level. (At debug, aiokafka logs every produced message with its bytes,
    # dead letters included, whose identifiers are the originals by design: never run debug there.)
    hashed = settings.with_overrides(identifier_hmac_key="synthetic-test-key-0123456789", log_level="info")
    scenario = generate(customers=30, seed=23, start_ms=int(time.time() * 1000) - 48 * 3600_000)
    identifiers = raw_identifiers(scenario)
    assert len(identifiers) > 50  # the scan has something to find
    assert any("@" in value for value in identifiers) and any(value.startswith("+44") for value in identifiers)

    worker = run_scenario(hashed, scenario, tmp_path, rate=50.0, timeout=300)
    try:
        exposition = worker.scrape()
        client = clickhouse_client(hashed)
        db = hashed.clickhouse.database
        try:
            keys = {key for row in client.execute(
                f"SELECT DISTINCT customer_key, attributed_key FROM {db}.customer_touchpoints") for key in row}
            stored_values = {value for (value,) in client.execute(
                f"SELECT DISTINCT identifier_value FROM {db}.identity_links")}
        finally:
            client.disconnect()
    finally:
        assert worker.stop() == 0
    logs = worker.log_path.read_text(errors="replace")
    assert len(logs) > 1000  # the scan read a real log

    leaked_to_logs = sorted(value for value in identifiers if value in logs)
    leaked_to_metrics = sorted(value for value in identifiers if value in exposition)
    leaked_to_clickhouse = sorted(identifiers & stored_values)
    assert leaked_to_logs == [], leaked_to_logs[:5]
    assert leaked_to_metrics == [], leaked_to_metrics[:5]
    assert leaked_to_clickhouse == [], leaked_to_clickhouse[:5]

    keys.discard("")
    assert len(keys) >= 30
    label_values = {value for family in text_string_to_metric_families(exposition)
                    for sample in family.samples for value in sample.labels.values()}
    customer_labels = sorted(value for value in label_values
                             if value in keys or value.startswith(("cust-", "anon-")))
    assert customer_labels == []
