"""Running real workers as child processes and waiting on ClickHouse: shared by demo and tests.

A worker runs as its own process (``python -m touchpoint.cli worker``), exactly as it would in
production, so it can be stopped with SIGTERM or killed with SIGKILL like a real one.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from clickhouse_driver import Client
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

from sinks.clickhouse import connect
from touchpoint.localstack import free_port, terminate
from touchpoint.security import kafka_python_config
from touchpoint.settings import ENV_PREFIX, Settings


def settings_env(settings: Settings) -> dict[str, str]:
    env = {f"{ENV_PREFIX}{name.upper()}": str(value) for name, value in vars(settings).items() if value != ""}
    return env


@dataclass
class WorkerProcess:
    process: subprocess.Popen[bytes]
    metrics_port: int
    log_path: Path

    @classmethod
    def start(cls, settings: Settings, log_path: Path, metrics_port: int | None = None) -> WorkerProcess:
        metrics_port = metrics_port or free_port()
        env = dict(os.environ)
        env.update(settings_env(settings.with_overrides(metrics_port=metrics_port)))
        out = open(log_path, "ab")
        process = subprocess.Popen(
            [sys.executable, "-m", "touchpoint.cli", "worker"],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
        out.close()
        return cls(process, metrics_port, log_path)

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def alive(self) -> bool:
        return self.process.poll() is None

    def scrape(self, names: Iterable[str] = ()) -> str:
        """The exposition, of only the series ``names`` when given."""
        query = urllib.parse.urlencode([("name[]", name) for name in names])
        url = f"{self.metrics_url}?{query}" if query else self.metrics_url
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.read().decode()

    def stop(self, grace: float = 30.0) -> int:
        """SIGTERM, as an orchestrator would: the worker flushes and commits before it exits."""
        return terminate(self.process, grace)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def uncommitted_messages(settings: Settings, topics: Iterable[str]) -> dict[str, int]:
    """Per topic: end offsets minus the consumer group's committed offsets (Faust's group is the app id).

    A partition the group never committed counts from offset 0. Zero everywhere means every message
    of those topics was acknowledged and committed.
    """
    config = kafka_python_config(settings)
    admin = KafkaAdminClient(**config, client_id="touchpoint-harness")
    consumer = KafkaConsumer(**config, client_id="touchpoint-harness", enable_auto_commit=False)
    try:
        # kafka-python 3 renamed list_consumer_group_offsets(group) to list_group_offsets({group: None})
        committed = admin.list_group_offsets({settings.app_id: None}).get(settings.app_id, {})
        partitions = [TopicPartition(topic, p) for topic in topics for p in consumer.partitions_for_topic(topic) or ()]
        ends = log_end_offsets(consumer, partitions)
        behind: dict[str, int] = {}
        for tp in partitions:
            done = committed[tp].offset if tp in committed and committed[tp].offset >= 0 else 0
            behind[tp.topic] = behind.get(tp.topic, 0) + max(ends[tp] - done, 0)
        return behind
    finally:
        consumer.close()
        admin.close()


def log_end_offsets(consumer: KafkaConsumer, partitions: list[TopicPartition],
                    timeout: float = 10.0) -> dict[TopicPartition, int]:
    """End offsets as the log has them: the broker's answer, moved past the records found after it.

    Tansu 0.6 answers ListOffsets with one past the *first* offset of a partition's last record
    batch (docs/reliability.md), so the rest of that batch would count as committed before it is.
    A fetch at that first offset returns the whole batch; on a broker that answers correctly it
    returns the last record, whose offset + 1 is the answer itself. Partitions not read within
    ``timeout`` keep the broker's answer.
    """
    ends = dict(consumer.end_offsets(partitions))
    reading = [tp for tp in partitions if ends[tp] > 0]
    if not reading:
        return ends
    consumer.assign(reading)
    for tp in reading:
        consumer.seek(tp, ends[tp] - 1)
    unread = set(reading)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        polled = consumer.poll(timeout_ms=200)
        if not polled and not unread:
            break  # every partition answered, and nothing more came
        for tp, records in polled.items():
            unread.discard(tp)
            ends[tp] = max(ends[tp], records[-1].offset + 1)
    return ends


def clickhouse_client(settings: Settings) -> Client:
    return connect(settings.clickhouse)


def wait_until(
    check: Callable[[], bool],
    timeout: float,
    interval: float = 1.0,
    on_tick: Callable[[], None] | None = None,
    describe: str = "condition",
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return
        if on_tick:
            on_tick()
        if time.monotonic() > deadline:
            raise TimeoutError(f"{describe} not reached within {timeout:.0f} s")
        time.sleep(interval)


def metric_value(exposition: str, name: str, labels: dict[str, str] | None = None) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels`` in a text exposition."""
    from prometheus_client.parser import text_string_to_metric_families

    total = 0.0
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in (labels or {}).items()):
                total += sample.value
    return total
