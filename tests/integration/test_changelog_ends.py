"""After a worker's commits, the broker's end offsets of its changelogs are the logs' true ends.

Tansu reports one past the first offset of a partition's last batch as its end, and Faust's table
recovery reads a changelog only that far: a worker recovering after a commit lost the state in the
rest of that batch, and its journeys then disagreed with their touchpoints after faults
(docs/reliability.md). Each commit now first ends every changelog partition written since the
last one with a one-record batch (agents.outbox.Outbox.mark_ends), so the reported end is the
true end whenever state is committed.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from kafka import KafkaConsumer, TopicPartition

from agents.changelog import END_MARKER_KEY
from pipeline.synthetic import generate
from touchpoint.demo import run_scenario
from touchpoint.harness import log_end_offsets
from touchpoint.security import kafka_python_config
from touchpoint.settings import Settings

pytestmark = pytest.mark.integration


def test_committed_changelogs_end_where_the_broker_says(settings: Settings, tmp_path: Path) -> None:
    scenario = generate(customers=40, seed=41, start_ms=int(time.time() * 1000) - 24 * 3600_000)
    worker = run_scenario(settings, scenario, tmp_path, rate=400.0, timeout=300)
    assert worker.stop() == 0  # SIGTERM: the last batches are stored and committed

    consumer = KafkaConsumer(**kafka_python_config(settings), enable_auto_commit=False)
    try:
        changelogs = [f"{settings.app_id}-{table}-changelog" for table in ("identity", "customers")]
        partitions = [TopicPartition(topic, p) for topic in changelogs
                      for p in sorted(consumer.partitions_for_topic(topic) or ())]
        assert len(partitions) == 2 * settings.partitions
        reported = consumer.end_offsets(partitions)
        true_ends = log_end_offsets(consumer, partitions)
        written = [tp for tp in partitions if true_ends[tp] > 0]
        assert len(written) == len(partitions)  # 40 customers: state on every partition
        assert {tp: reported[tp] for tp in written} == {tp: true_ends[tp] for tp in written}

        consumer.assign(written)
        for tp in written:
            consumer.seek(tp, true_ends[tp] - 1)
        last: dict[TopicPartition, tuple[bytes, bytes | None]] = {}
        deadline = time.monotonic() + 10
        while len(last) < len(written) and time.monotonic() < deadline:
            for tp, records in consumer.poll(timeout_ms=200).items():
                last[tp] = (records[-1].key, records[-1].value)
    finally:
        consumer.close()
    assert set(last.values()) == {(END_MARKER_KEY, None)}  # each ends in the commit's tombstone
