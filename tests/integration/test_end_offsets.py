"""Table recovery's end offsets, read from the log: the real broker, record batches of several sizes.

The local broker (Tansu) reports one past the first offset of a partition's last batch; Faust's
recovery stopped there and lost the rest of that batch's table states (agents/end_offsets.py).
On a broker that reports ends correctly (the compose stack's Kafka) the check changes nothing;
the test asserts the true ends either way.
"""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

from agents.end_offsets import read_end_offsets
from touchpoint.settings import Settings

BATCHES = {0: [5, 10], 1: [1, 7, 3], 2: [12]}  # partition -> records per batch; partition 3 stays empty


def test_recovery_reads_past_the_last_batch(settings: Settings) -> None:
    topic = f"{settings.topic_prefix}.changelog-like"
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    try:
        admin.create_topics([NewTopic(topic, 4, 1)])
    finally:
        admin.close()

    async def scenario() -> tuple[dict[TopicPartition, int], dict[TopicPartition, int | None]]:
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
        tps = [TopicPartition(topic, p) for p in range(4)]
        consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers)
        await consumer.start()
        try:
            reported = await consumer.end_offsets(tps)
        finally:
            await consumer.stop()
        return reported, read_end_offsets({"bootstrap_servers": settings.kafka_bootstrap_servers}, reported)

    reported, ends = asyncio.run(scenario())
    print(f"reported by the broker: {sorted((tp.partition, end) for tp, end in reported.items())}")
    assert {tp.partition: end for tp, end in ends.items()} == {0: 15, 1: 11, 2: 12, 3: 0}
