"""End offsets read from the log, for table recovery on a broker that under-reports them.

Faust recovers a table by reading its changelog partitions up to the end offsets the broker
reports when recovery starts. The local broker (Tansu 0.6) reports one past the *first* offset of
a partition's last record batch, not past its last record: after a batch of 10 records at offset
5 it says 6, not 15 (checked in ``tests/integration/test_end_offsets.py``). Recovery then stopped
before the last batch of every changelog partition, a worker restarted with customer states
older than the rows it had stored, and replays met their events in another order: the fault
suite's residual of journeys disagreeing with their touchpoints, which grew with the producer's
batch size.

So the worker checks the reported ends: it reads each partition from the reported end minus one
until the log has nothing more, and takes one past the last offset it saw. On a broker that
reports ends correctly this reads one record per partition and changes nothing.
"""

from __future__ import annotations

from typing import Any, Mapping

from kafka import KafkaConsumer
from kafka.structs import TopicPartition

READ_TIMEOUT_MS = 500


def read_end_offsets(config: Mapping[str, Any], reported: Mapping[Any, int | None]) -> dict[Any, int | None]:
    """``reported`` with each end moved past the last record actually in the partition.

    Blocking (kafka-python, run it in an executor): ``config`` holds ``bootstrap_servers`` and the
    security options; the keys of ``reported`` are any ``(topic, partition)`` structs."""
    ends = dict(reported)
    to_check = {TopicPartition(tp.topic, tp.partition): tp for tp, end in reported.items() if end}
    if not to_check:
        return ends
    consumer = KafkaConsumer(enable_auto_commit=False, **config)
    try:
        consumer.assign(list(to_check))
        for tp, original in to_check.items():
            consumer.seek(tp, ends[original] - 1)  # type: ignore[operator]
        while True:
            fetched = consumer.poll(timeout_ms=READ_TIMEOUT_MS)
            if not any(fetched.values()):
                return ends
            for tp, records in fetched.items():
                if records:
                    original = to_check[tp]
                    ends[original] = max(ends[original] or 0, records[-1].offset + 1)
    finally:
        consumer.close()
