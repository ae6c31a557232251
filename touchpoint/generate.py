"""Send a synthetic scenario to Kafka and save its manifest: the I/O half of ``pipeline.synthetic``.

The scenario is built in memory first (pure and seeded), so what reaches the broker is exactly
what the manifest describes; this module only delivers it, in event-time order.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Mapping

import orjson
from kafka import KafkaProducer

from pipeline.synthetic import Scenario

PROGRESS_EVERY = 1000


class ProduceError(RuntimeError):
    """Some messages were not acknowledged by the broker; the scenario's ground truth no longer holds."""


def produce(
    scenario: Scenario,
    bootstrap_servers: str,
    topic_prefix: str = "touchpoints",
    rate: float | None = None,
    progress: Callable[[int], None] | None = None,
    client_config: Mapping[str, Any] | None = None,
) -> int:
    """Produce every message in order; returns how many were sent and acknowledged.

    ``rate`` paces sending in messages per second (None: as fast as the broker takes them);
    ``progress`` is called with the running count every :data:`PROGRESS_EVERY` messages and at the
    end. Raises :class:`ProduceError` when any message was refused, after the others are flushed.
    ``client_config`` is ``touchpoint.security.kafka_python_config(settings)`` for a secured broker.
    """
    if rate is not None and rate <= 0:
        raise ValueError("rate must be positive (or None for as fast as possible)")
    failures: list[BaseException] = []
    producer = _producer(bootstrap_servers, client_config)
    try:
        sent = _send_all(producer, scenario, topic_prefix, rate, progress, failures.append)
        producer.flush()
    finally:
        producer.close()
    if failures:
        raise ProduceError(f"{len(failures)} of {sent} messages were not acknowledged: {failures[0]!r}")
    if progress is not None:
        progress(sent)
    return sent


def _producer(bootstrap_servers: str, client_config: Mapping[str, Any] | None = None) -> KafkaProducer:
    # Idempotence is off because not every broker supports InitProducerId (Tansu does not);
    # duplicates from retries are harmless, since the pipeline de-duplicates by event_id.
    config = {"bootstrap_servers": bootstrap_servers.split(","), **(client_config or {})}
    return KafkaProducer(
        **config,
        acks="all",
        linger_ms=5,
        batch_size=256 * 1024,
        enable_idempotence=False,
        client_id="touchpoint-generate",
    )


def _send_all(
    producer: KafkaProducer,
    scenario: Scenario,
    topic_prefix: str,
    rate: float | None,
    progress: Callable[[int], None] | None,
    on_failure: Callable[[BaseException], None],
) -> int:
    started = time.monotonic()
    sent = 0
    for message in scenario.messages:
        if rate is not None:
            _wait_for_slot(started, sent, rate)
        future = producer.send(f"{topic_prefix}.{message.topic}", value=message.value, key=message.key)
        future.add_errback(on_failure)
        sent += 1
        if progress is not None and sent % PROGRESS_EVERY == 0:
            progress(sent)
    return sent


def _wait_for_slot(started: float, sent: int, rate: float) -> None:
    """Sleep until message number ``sent`` is due; a schedule, so sleeps' overshoot does not add up."""
    delay = started + sent / rate - time.monotonic()
    if delay > 0:
        time.sleep(delay)


def write_manifest(scenario: Scenario, path: str | Path) -> None:
    """Write the ground truth as indented JSON, for tests and people checking a run by hand."""
    Path(path).write_bytes(orjson.dumps(scenario.manifest.to_dict(), option=orjson.OPT_INDENT_2))
