"""A table written through TableWriter: the store holds the value, and the changelog gets the
record Faust would write (raw key and value, the key's partition, a tombstone for a delete)."""

from __future__ import annotations

import asyncio

import faust

from agents.changelog import TableWriter
from agents.outbox import Outbox, key_partition
from tests.fake_producer import FakeFaustProducer


def test_writes_reach_the_store_and_the_changelog_partition_of_their_key() -> None:
    async def scenario() -> None:
        app = faust.App("changelog-test", broker="kafka://127.0.0.1:1", store="memory://")
        table = app.Table("customers", default=None, partitions=4, use_partitioner=True,
                          key_type=bytes, value_type=bytes)
        producer = FakeFaustProducer()
        writer = TableWriter(table, Outbox(producer, 4))
        writer[b"cust-1"] = b'{"q":1}'
        writer[b"cust-2"] = b'{"q":7}'
        writer[b"cust-1"] = b'{"q":2}'
        del writer[b"cust-2"]
        assert writer.get(b"cust-1") == b'{"q":2}' and b"cust-2" not in writer
        assert list(writer.keys()) == [b"cust-1"]
        await writer.outbox.send()
        producer.drain()
        assert {topic for topic, _, _ in producer.sent} == {"changelog-test-customers-changelog"}
        records = [(partition, key, value) for _, partition, batch in producer.sent for key, value, _, _ in batch]
        assert [(key, value) for _, key, value in records if key == b"cust-1"] == [(b"cust-1", b'{"q":1}'), (b"cust-1", b'{"q":2}')]
        assert [(key, value) for _, key, value in records if key == b"cust-2"] == [(b"cust-2", b'{"q":7}'), (b"cust-2", None)]
        assert len(records) == 4 and all(partition == key_partition(key, 4) for partition, key, _ in records)

    asyncio.run(scenario())
