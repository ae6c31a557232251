"""End offsets read from the log by the test harness: the real broker, record batches of several sizes.

The local broker (Tansu 0.6) answers ListOffsets with one past the first offset of a partition's
last record batch. The fault suite and the shutdown test decide "every message committed" by
comparing the group's commits with end offsets, so with the broker's answer the rest of each last
batch counted as committed before it was (touchpoint.harness.log_end_offsets). On a broker that
answers correctly (the compose stack's Kafka) the read changes nothing; the test asserts the true
ends either way.
"""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaProducer
from kafka import KafkaConsumer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

from touchpoint.harness import log_end_offsets
from touchpoint.localstack import LocalStack
from touchpoint.security import kafka_python_config
from touchpoint.settings import Settings

BATCHES = {0: [5, 10], 1: [1, 7, 3], 2: [12]}  # partition -> records per batch; partition 3 stays empty
TRUE_ENDS = {0: 15, 1: 11, 2: 12, 3: 0}
TANSU_REPORTS = {0: 6, 1: 9, 2: 1, 3: 0}  # one past the first offset of the last batch


async def _produce_batches(settings: Settings, topic: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await producer.start()
    try:
        for partition, sizes in BATCHES.items():
            for size in sizes:
                batch = producer.create_batch()
                for n in range(size):
                    batch.append(key=b"customer-synthetic", value=b"record-%d" % n, timestamp=None)
                batch.close()
                await (await producer.send_batch(batch, topic, partition=partition))
    finally:
        await producer.stop()


def test_the_harness_reads_end_offsets_past_the_last_batch(settings: Settings, stack: LocalStack) -> None:
    topic = f"{settings.topic_prefix}.batches"
    admin = KafkaAdminClient(**kafka_python_config(settings))
    try:
        admin.create_topics([NewTopic(topic, 4, 1)])
    finally:
        admin.close()
    asyncio.run(_produce_batches(settings, topic))
    tps = [TopicPartition(topic, p) for p in range(4)]
    consumer = KafkaConsumer(**kafka_python_config(settings), enable_auto_commit=False)
    try:
        reported = consumer.end_offsets(tps)
        ends = log_end_offsets(consumer, tps)
    finally:
        consumer.close()
    if "tansu" in stack.servers:  # the embedded broker: why the harness reads the log
        assert {tp.partition: end for tp, end in reported.items()} == TANSU_REPORTS
    assert {tp.partition: end for tp, end in ends.items()} == TRUE_ENDS
