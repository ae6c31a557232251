"""End offsets checked against the log, by table recovery and by the test harness: the real broker,
record batches of several sizes.

The local broker (Tansu 0.6) answers ListOffsets with one past the first offset of a partition's
last record batch; Faust's recovery stopped there and lost the rest of that batch's table states
(agents/end_offsets.py). The first test shows that behaviour (on the embedded broker) and that
the check finds the true ends; on a broker that reports ends correctly (the compose stack's
Kafka) the check changes nothing, and the test asserts the true ends either way. How the
worker's consumer calls it, and its bounds, are unit-tested (tests/unit/test_end_offsets.py).
The fault suite and the shutdown test decide "every message committed" against end offsets too,
read from the log by touchpoint.harness.log_end_offsets (kafka-python, outside any worker).
"""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition
from kafka import KafkaConsumer
from kafka import TopicPartition as KafkaTopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

from agents.end_offsets import read_end_offsets
from touchpoint.harness import log_end_offsets
from touchpoint.localstack import LocalStack
from touchpoint.security import kafka_python_config
from touchpoint.settings import Settings

BATCHES = {0: [5, 10], 1: [1, 7, 3], 2: [12]}  # partition -> records per batch; partition 3 stays empty
TRUE_ENDS = {0: 15, 1: 11, 2: 12, 3: 0}
# Tansu 0.6: one past the first offset of the last batch
TANSU_REPORTS = {0: 6, 1: 9, 2: 1, 3: 0}


def _create_topic(settings: Settings, name: str) -> None:
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    try:
        admin.create_topics([NewTopic(name, 4, 1)])
    finally:
        admin.close()


async def _produce_batches(settings: Settings, topic: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await producer.start()
    try:
        for partition, sizes in BATCHES.items():
            for size in sizes:
                batch = producer.create_batch()
                for n in range(size):
                    batch.append(key=b"customer-synthetic", value=b"state-%d" % n, timestamp=None)
                batch.close()
                await (await producer.send_batch(batch, topic, partition=partition))
    finally:
        await producer.stop()


async def _reported(settings: Settings, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await consumer.start()
    try:
        return await consumer.end_offsets(tps)
    finally:
        await consumer.stop()


def test_recovery_reads_past_the_last_batch(settings: Settings, stack: LocalStack) -> None:
    topic = f"{settings.topic_prefix}.changelog-like"
    _create_topic(settings, topic)
    tps = [TopicPartition(topic, p) for p in range(4)]

    async def scenario() -> tuple[dict[TopicPartition, int], dict[TopicPartition, int | None], int]:
        await _produce_batches(settings, topic)
        reported = await _reported(settings, tps)
        ends = await read_end_offsets(reported, {"bootstrap_servers": settings.kafka_bootstrap_servers})
        return reported, ends, len(asyncio.all_tasks())

    reported, ends, tasks_left = asyncio.run(scenario())
    print(f"reported by the broker: {sorted((tp.partition, end) for tp, end in reported.items())}")
    print(f"read from the log:      {sorted((tp.partition, end) for tp, end in ends.items())}")
    if "tansu" in stack.servers:  # the embedded broker: the behaviour the check exists for
        assert {tp.partition: end for tp, end in reported.items()} == TANSU_REPORTS
    assert {tp.partition: end for tp, end in ends.items()} == TRUE_ENDS
    assert tasks_left == 1  # only scenario() itself: the reading consumer stopped, nothing left behind



def test_the_harness_reads_end_offsets_past_the_last_batch(settings: Settings, stack: LocalStack) -> None:
    topic = f"{settings.topic_prefix}.batches"
    _create_topic(settings, topic)
    asyncio.run(_produce_batches(settings, topic))
    tps = [KafkaTopicPartition(topic, p) for p in range(4)]
    consumer = KafkaConsumer(**kafka_python_config(settings), enable_auto_commit=False)
    try:
        reported = consumer.end_offsets(tps)
        ends = log_end_offsets(consumer, tps)
    finally:
        consumer.close()
    if "tansu" in stack.servers:
        assert {tp.partition: end for tp, end in reported.items()} == TANSU_REPORTS
    assert {tp.partition: end for tp, end in ends.items()} == TRUE_ENDS
