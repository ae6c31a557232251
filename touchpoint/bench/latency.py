"""Event-to-ClickHouse latency at a fixed offered load, measured from outside the worker.

Events are produced at a steady rate with their event time set to the wall-clock send time, and
ClickHouse is polled every :data:`POLL_SECONDS` for the ids that became visible. A row's latency
is the start of the first query that returned it minus its send time, so it errs high by at most
one poll interval, never low.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

import orjson
from aiokafka import AIOKafkaProducer

from agents.outbox import key_partition
from touchpoint.bench.dataset import Dataset
from touchpoint.bench.figures import latency_summary
from touchpoint.harness import clickhouse_client
from touchpoint.settings import Settings

POLL_SECONDS = 0.05
DRAIN_SECONDS = 60.0
SEND_TICK_SECONDS = 0.005


@dataclass
class LatencyRun:
    offered_per_s: float
    sent: int = 0
    send_seconds: float = 0.0
    sent_at: dict[str, float] = field(default_factory=dict)
    seen_at: dict[str, float] = field(default_factory=dict)

    def latencies(self) -> list[float]:
        return [self.seen_at[event_id] - sent for event_id, sent in self.sent_at.items() if event_id in self.seen_at]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "offered_per_s": round(self.offered_per_s, 1),
            "sent": self.sent,
            "achieved_send_per_s": round(self.sent / self.send_seconds, 1) if self.send_seconds else None,
            "visible": len(self.seen_at),
        }
        values = self.latencies()
        if values:
            out.update({name: round(value, 3) for name, value in latency_summary(values).items()})
        return out


def live_messages(dataset: Dataset, count: int, run: str) -> list[tuple[str, bytes | None, dict[str, Any]]]:
    """``count`` valid JSON channel events from the dataset, cycled, with fresh ids in send order.

    Ids sort in the order they are sent, which lets the poller ask only for ids at or above the
    lowest one not yet seen.
    """
    sources = [(m.topic, m.key, orjson.loads(m.value)) for m in dataset.messages
               if m.valid and m.topic != "identity" and m.value[:1] == b"{"]
    if not sources:
        raise ValueError("the dataset holds no valid JSON events to replay")
    out = []
    for number in range(count):
        topic, key, record = sources[number % len(sources)]
        out.append((topic, key, {**record, "event_id": f"lat-{run}-{number:08d}"}))
    return out


def measure_latency(
    dataset: Dataset,
    settings: Settings,
    rate: float,
    seconds: float,
    on_progress: Callable[[int], None] | None = None,
) -> LatencyRun:
    """Produce ``rate`` events/s for ``seconds`` into a joined worker's topics and time their rows."""
    run_id = uuid.uuid4().hex[:8]
    messages = live_messages(dataset, max(int(rate * seconds), 1), run_id)
    result = LatencyRun(offered_per_s=rate)
    sender = threading.Thread(target=_send, args=(messages, settings, rate, result), name="latency-send", daemon=True)
    sender.start()
    _poll(settings, result, [record["event_id"] for _, _, record in messages], sender, on_progress)
    sender.join(10)
    return result


def _send(messages: list[tuple[str, bytes | None, dict[str, Any]]], settings: Settings, rate: float,
          result: LatencyRun) -> None:
    asyncio.run(_send_batches(messages, settings, rate, result))


async def _send_batches(messages: list[tuple[str, bytes | None, dict[str, Any]]], settings: Settings,
                        rate: float, result: LatencyRun) -> None:
    """Every :data:`SEND_TICK_SECONDS`, what is due, as one producer batch per topic-partition.

    The load generator shares the machine with the system it measures, so it must cost little:
    kafka-python's per-record ``send`` took 0.70 of a core at 3,000 events/s here, these batches
    0.18. Keyed records go to the partition the default partitioner would pick (the worker processes
    a record keyed by its customer in place only there); the others are spread round robin.
    """
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks=1,
                                enable_idempotence=False, client_id="touchpoint-bench-latency")
    await producer.start()
    partitions = settings.partitions
    deliveries = []
    started = time.monotonic()
    sent = 0
    try:
        while sent < len(messages):
            due = min(len(messages), int((time.monotonic() - started) * rate) + 1)
            now = time.time()
            batches: dict[tuple[str, int], Any] = {}
            full: list[tuple[tuple[str, int], Any]] = []
            for number in range(sent, due):
                topic, key, record = messages[number]
                record["occurred_at"] = int(now * 1000)
                result.sent_at[record["event_id"]] = now
                partition = number % partitions if key is None else key_partition(key, partitions)
                value = orjson.dumps(record)
                batch = batches.get((topic, partition))
                if batch is None or batch.append(key=key, value=value, timestamp=None) is None:
                    if batch is not None:  # full: it leaves as it is, the record opens the next one
                        full.append(((topic, partition), batch))
                    batch = batches[topic, partition] = producer.create_batch()
                    batch.append(key=key, value=value, timestamp=None)
            for (topic, partition), batch in [*full, *batches.items()]:
                batch.close()
                deliveries.append(await producer.send_batch(batch, f"{settings.topic_prefix}.{topic}", partition=partition))
            result.sent = sent = due
            await asyncio.sleep(SEND_TICK_SECONDS)
        await asyncio.gather(*deliveries)
    finally:
        result.send_seconds = time.monotonic() - started
        await producer.stop()


def _poll(settings: Settings, result: LatencyRun, ids: list[str], sender: threading.Thread,
          on_progress: Callable[[int], None] | None) -> None:
    """Ask for the sent ids from the lowest unseen one up; stop when all are seen or the drain ends."""
    client = clickhouse_client(settings)
    table = f"{settings.clickhouse.database}.touchpoints"
    lowest = 0
    deadline: float | None = None
    try:
        while lowest < len(ids):
            if deadline is None and not sender.is_alive():
                deadline = time.monotonic() + DRAIN_SECONDS
            if deadline is not None and time.monotonic() > deadline:
                break
            sent = result.sent
            if lowest < sent:
                asked = time.time()
                rows = client.execute(
                    f"SELECT event_id FROM {table} WHERE event_id >= %(low)s AND event_id <= %(high)s",
                    {"low": ids[lowest], "high": ids[sent - 1]})
                for (event_id,) in rows:
                    result.seen_at.setdefault(event_id, asked)
                while lowest < sent and ids[lowest] in result.seen_at:
                    lowest += 1
                if on_progress is not None:
                    on_progress(len(result.seen_at))
            time.sleep(POLL_SECONDS)
    finally:
        client.disconnect()
