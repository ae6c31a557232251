"""State size per active customer, read from the worker's customer-table changelog topic.

The changelog is what a restarting worker recovers from, so the latest value per key is exactly
the state Touchpoint keeps per customer, whatever its in-memory form.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from kafka import KafkaConsumer, TopicPartition


@dataclass(frozen=True)
class StateSize:
    customers: int
    mean_bytes: float
    max_bytes: int

    def to_dict(self) -> dict[str, float | int]:
        return {"customers": self.customers, "mean_bytes": round(self.mean_bytes, 1), "max_bytes": self.max_bytes}


def changelog_topic(app_id: str, table: str = "customers") -> str:
    return f"{app_id}-{table}-changelog"


def summarise(records: Iterable[tuple[bytes | None, bytes | None]]) -> StateSize | None:
    """Latest value per key (a None value deletes the key); None when no key is left."""
    latest: dict[bytes | None, int] = {}
    for key, value in records:
        if value is None:
            latest.pop(key, None)
        else:
            latest[key] = len(value)
    if not latest:
        return None
    sizes = list(latest.values())
    return StateSize(len(sizes), sum(sizes) / len(sizes), max(sizes))


def read_changelog(bootstrap_servers: str, topic: str, timeout: float = 60.0) -> StateSize | None:
    """Read ``topic`` from the beginning to its current end and summarise it."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap_servers.split(","), enable_auto_commit=False,
                             group_id=None, consumer_timeout_ms=int(timeout * 1000),
                             client_id="touchpoint-bench-state")
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            return None
        assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(assigned)
        consumer.seek_to_beginning(*assigned)
        end = consumer.end_offsets(assigned)
        remaining = {tp for tp in assigned if end[tp] > 0}
        if not remaining:
            return None
        records: list[tuple[bytes | None, bytes | None]] = []
        for record in consumer:
            records.append((record.key, record.value))
            tp = TopicPartition(record.topic, record.partition)
            if record.offset + 1 >= end[tp]:
                remaining.discard(tp)
            if not remaining:
                break
        return summarise(records)
    finally:
        consumer.close()
